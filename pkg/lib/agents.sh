# shellcheck shell=bash
# Which agent each file of a staged tree (hcloud-image dist) belongs to. Sourced by
# pkg/debian/build-debs and pkg/release/make-release, so every package splits the tree the same
# way: a file belongs to the agent whose name its base name (or its drop-in directory's name)
# carries as a whole word, the longest name winning (hcloud-network-refresh.path belongs to
# hcloud-network). Files that carry no agent's name are image-only (the fallback network).

# agents_load MANIFEST: fill `agents` (binary names) and `files` (tree paths) from the manifest.
agents_load() {
  local manifest=$1
  [ -f "$manifest" ] || {
    echo "$manifest is missing: not a tree made by hcloud-image dist" >&2
    return 1
  }
  mapfile -t agents < <(jq -r '.binaries[]' "$manifest")
  mapfile -t files < <(jq -r '.files[].path' "$manifest")
  if [ "${#agents[@]}" -eq 0 ]; then
    echo "$manifest lists no binaries" >&2
    return 1
  fi
}

# owner_of PATH: print the agent PATH belongs to (nothing if none).
owner_of() {
  local path=$1 name best='' a
  for name in "$(basename "$path")" "$(basename "$(dirname "$path")")"; do
    for a in "${agents[@]}"; do
      if [[ "$name" =~ (^|[^a-z0-9])${a}([^a-z0-9]|$) ]] && [ ${#a} -gt ${#best} ]; then
        best=$a
      fi
    done
    [ -n "$best" ] && break
  done
  printf '%s' "$best"
}

# files_of AGENT: print the tree paths of AGENT, one a line.
files_of() {
  local f
  for f in "${files[@]}"; do
    [ "$(owner_of "$f")" = "$1" ] && printf '%s\n' "$f"
  done
  return 0
}

# agent_deps AGENT TREE: print the other agents AGENT's units need, one a line: programs of
# other agents a unit runs, and units of other agents it Wants=/Requires=/BindsTo=.
agent_deps() {
  local agent=$1 tree=$2 f ref o
  while read -r f; do
    case "$f" in usr/bin/*) continue ;; esac
    while read -r ref; do
      [ -n "$ref" ] || continue
      o=$(owner_of "$ref")
      if [ -n "$o" ] && [ "$o" != "$agent" ]; then printf '%s\n' "$o"; fi
    done < <(
      grep -o '/usr/bin/hcloud-[A-Za-z0-9_-]*' "$tree/$f" | sed 's|.*/||'
      grep -E '^(Wants|Requires|BindsTo|Requisite)=' "$tree/$f" | cut -d= -f2- | tr ' ' '\n' | grep '^hcloud-' || true
    )
  done < <(files_of "$agent")
}
