#!/usr/bin/env bash
# Install the staged tree of `hcloud-image dist` into a target root, as a package would, and
# enable its units through their presets.
#   1. every file is checked against the tree's SHA256SUMS (the upload is complete and intact)
#   2. each listed file is installed owned by root, 0755 in usr/bin, 0644 elsewhere
#   3. the units are enabled offline with `systemctl --root=ROOT preset` (the tree's preset
#      files say what is enabled), or `enable` where the tree ships no preset
#
# Usage: install-agents.sh TREE ROOT
set -euo pipefail

die() { echo "install-agents.sh: $*" >&2; exit 1; }
[ "$#" -eq 2 ] || die "usage: $0 TREE ROOT"
tree=${1%/}
root=${2%/}
sums=usr/share/hcloud-agents/SHA256SUMS
manifest=usr/share/hcloud-agents/manifest.json

[ -f "$tree/$sums" ] || die "$tree/$sums is missing: is $tree a tree made by hcloud-image dist?"
[ -d "$root" ] || die "$root is not a directory"

(cd "$tree" && sha256sum --check --quiet --strict "$sums") ||
  die "the staged tree in $tree does not match its SHA256SUMS (incomplete upload?)"

units=()
have_preset=0
while read -r _ path; do
  case "$path" in
    /* | *..*) die "unsafe path '$path' in $sums" ;;
    usr/bin/*) mode=0755 ;;
    *) mode=0644 ;;
  esac
  install -D -o root -g root -m "$mode" "$tree/$path" "$root/$path"
  case "$path" in
    usr/lib/systemd/system/*/* | usr/lib/systemd/system/*@.*) ;; # drop-ins; templates (udev instantiates them)
    usr/lib/systemd/system/*) units+=("${path##*/}") ;;
    usr/lib/systemd/system-preset/*) have_preset=1 ;;
  esac
done <"$tree/$sums"
install -D -o root -g root -m 0644 "$tree/$sums" "$root/$sums"
install -D -o root -g root -m 0644 "$tree/$manifest" "$root/$manifest"
echo "install-agents.sh: installed $(wc -l <"$tree/$sums") files into $root"

if [ "${#units[@]}" -gt 0 ]; then
  if [ "$have_preset" -eq 1 ]; then
    systemctl --root="$root" preset "${units[@]}"
  else
    systemctl --root="$root" enable "${units[@]}"
  fi
  echo "install-agents.sh: units: ${units[*]}"
fi
