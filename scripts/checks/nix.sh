#!/usr/bin/env bash
# Static checks of the NixOS module (nix/), with Debian's nix-bin and no nixpkgs download:
#  1. every .nix file of the repository parses;
#  2. the pure function nix/lib/hcloud.nix turns each golden metadata document into the expected
#     NixOS settings (networkd networks, hostname, root keys, resolvers);
#  3. the documents in nix/tests/fixtures are byte-for-byte the Rust golden documents;
#  4. NixOS' networks configure the same as hcloud-network's golden files for the same document;
#  5. the module evaluates against a stub lib (option defaults mirror the document; empty
#     defaults without one or under pure evaluation; the agents, overrides and options wire up);
#  6. the module, the NixOS image's configuration and the example evaluate under nixpkgs' real
#     module system (nix/tests/nixos: the scenarios of scenarios.nix), offline with the pinned
#     nixpkgs lib (nix/tests/nixpkgs-lib.json) and typed stand-ins of the NixOS options, or with
#     a full nixpkgs through nixos/lib/eval-config.nix down to the toplevel's drvPath;
#  7. the package derivation builds the crates and installs the units that exist, and each
#     agent's manual page and completions.
#
# Usage: scripts/checks/nix.sh [-I nixpkgs=PATH]   (or NIXPKGS=PATH: a full nixpkgs checkout;
#   needs a Nix that nixpkgs accepts, >= 2.18). Without one the NixOS scenarios are evaluated
#   offline only, and the check says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

while [ "$#" -gt 0 ]; do
  case "$1" in
    -I) [ "$#" -ge 2 ] || { echo "nix.sh: -I needs nixpkgs=PATH" >&2; exit 2; }; NIXPKGS=$2; shift 2 ;;
    -I*) NIXPKGS=${1#-I}; shift ;;
    *) echo "nix.sh: unknown argument '$1' (usage: $0 [-I nixpkgs=PATH])" >&2; exit 2 ;;
  esac
  case "$NIXPKGS" in
    nixpkgs=*) NIXPKGS=${NIXPKGS#nixpkgs=} ;;
    *) echo "nix.sh: -I takes nixpkgs=PATH" >&2; exit 2 ;;
  esac
done
if [ -n "${NIXPKGS:-}" ]; then
  [ -f "$NIXPKGS/nixos/lib/eval-config.nix" ] ||
    { echo "nix.sh: NIXPKGS=$NIXPKGS is not a nixpkgs checkout (no nixos/lib/eval-config.nix)" >&2; exit 2; }
  NIXPKGS=$(cd "$NIXPKGS" && pwd)
fi

for tool in nix-instantiate jq zstd; do
  command -v "$tool" >/dev/null || { echo "nix.sh: $tool is missing: run scripts/install-deps" >&2; exit 1; }
done

# A private store and state dir: works as any user and leaves the machine's Nix alone.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NIX_STORE_DIR=$tmp/store NIX_STATE_DIR=$tmp/state NIX_LOG_DIR=$tmp/log NIX_CONF_DIR=$tmp/conf
mkdir -p "$NIX_CONF_DIR"
printf 'build-users-group =\nexperimental-features = nix-command\n' >"$NIX_CONF_DIR/nix.conf"

# shellcheck source=scripts/lib/manual-checks.sh
. scripts/lib/manual-checks.sh

failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
pass() { echo "ok: $*"; }
eval_json() { nix-instantiate --eval --strict --json "$@"; }

echo "-- parse"
# Every .nix file of the repository (the module's, the flake, the NixOS image's).
mapfile -t files < <(find . -name '*.nix' -type f -not -path './target/*' -not -path './.git/*' | sed 's|^\./||' | sort)
for f in "${files[@]}"; do
  if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then pass "parse $f"; else fail "parse $f: $out"; fi
done

echo "-- settings of each document"
settings_of() { # document [privateDhcp]
  eval_json --argstr doc "$1" -E "{ doc }: (import $root/nix/lib/hcloud.nix).settings (builtins.fromJSON (builtins.readFile doc))"
}
cases=0
for dir in nix/tests/fixtures/* nix/tests/cases/*; do
  name=$(basename "$dir")
  expected=nix/tests/expected/$name.json
  [ -f "$expected" ] || expected=$dir/expected.json
  [ -f "$expected" ] || { fail "$dir has no expected settings ($expected)"; continue; }
  cases=$((cases + 1))
  if got=$(settings_of "$root/$dir/document.json" 2>&1) && diff -u "$expected" <(jq -S . <<<"$got") >"$tmp/diff"; then
    pass "settings $name"
  else
    fail "settings $name"; cat "$tmp/diff" 2>/dev/null || true; echo "$got" | head -20
  fi
done
[ "$cases" -ge 9 ] || fail "only $cases documents checked"

echo "-- fixtures are the Rust golden documents"
for dir in crates/hcloud-metadata/tests/fixtures/*/; do
  name=$(basename "$dir")
  [ -f "$dir/document.json" ] || continue
  if cmp -s "$dir/document.json" "nix/tests/fixtures/$name/document.json"; then
    pass "fixture $name"
  else
    fail "nix/tests/fixtures/$name/document.json differs from $dir/document.json (copy it and update nix/tests/expected/$name.json)"
  fi
done

echo "-- same configuration as hcloud-network"
compared=0
for dir in crates/hcloud-network/tests/golden/*/; do
  name=$(basename "$dir")
  [ -d "$dir/expected" ] || continue
  [ -f "$dir/document.json" ] || { fail "golden $name has no document.json"; continue; }
  args=""
  [ -f "$dir/args" ] && args=$(cat "$dir/args")
  common=(nix/tests/compare.nix --argstr document "$root/$dir/document.json" --argstr golden "$root/$dir/expected" --argstr args "$args")
  if ours=$(eval_json "${common[@]}" -A ours 2>&1) && theirs=$(eval_json "${common[@]}" -A theirs 2>&1) &&
    diff -u <(jq -S . <<<"$theirs") <(jq -S . <<<"$ours") >"$tmp/diff"; then
    pass "networkd $name ($(jq length <<<"$ours") interfaces)"
    compared=$((compared + 1))
  else
    fail "networkd $name: NixOS (+) and hcloud-network (-) configure differently"
    cat "$tmp/diff" 2>/dev/null || true; echo "$ours" | head -5; echo "$theirs" | head -5
  fi
done
[ "$compared" -ge 5 ] || fail "only $compared hcloud-network golden cases compared (expected at least 5)"

echo "-- same networks and the same complaints as the hcloud-network binary, for every document"
# The static release build, exactly as scripts/test makes it before the checks (so a no-op there;
# when this script runs alone it brings the binaries up to date with the sources).
if ! cargo build --quiet --release --locked --target x86_64-unknown-linux-musl --workspace --bins; then
  fail "the workspace's static release build failed (above): the comparisons with the agents use stale or missing binaries"
fi
net_bin=target/x86_64-unknown-linux-musl/release/hcloud-network
if [ -x "$net_bin" ]; then
  compared=0
  for dir in nix/tests/fixtures/* nix/tests/cases/*; do
    name=$(basename "$dir")
    r=$tmp/net-$name
    mkdir -p "$r/etc"
    cp "$dir/document.json" "$r/etc/hcloud-metadata.json"
    # Exit status 1 means "some entries skipped": the files and warnings are compared below.
    "$net_bin" --root "$r" >"$tmp/net.log" 2>&1 || true
    mkdir -p "$r/run/systemd/network"
    common=(nix/tests/compare.nix --argstr document "$root/$dir/document.json" --argstr golden "$r/run/systemd/network")
    agent_warnings=$(sed -n 's/^hcloud-network: warning: //p' "$tmp/net.log" | grep -v '^configured .* interface(s) from' || true)
    nixos_warnings=$(eval_json "${common[@]}" -A problems | jq -r '.[] | select(startswith("ssh_keys") | not)')
    if ours=$(eval_json "${common[@]}" -A ours 2>&1) && theirs=$(eval_json "${common[@]}" -A theirs 2>&1) &&
      diff -u <(jq -S . <<<"$theirs") <(jq -S . <<<"$ours") >"$tmp/diff" &&
      diff -u <(echo "$agent_warnings") <(echo "$nixos_warnings") >>"$tmp/diff"; then
      pass "hcloud-network on $name ($(jq length <<<"$ours") interfaces, $(grep -c . <<<"$nixos_warnings" || true) problems)"
      compared=$((compared + 1))
    else
      fail "hcloud-network on $name: the agent (-) and NixOS (+) differ"; cat "$tmp/diff"; cat "$tmp/net.log"
    fi
  done
  [ "$compared" -ge 10 ] || fail "only $compared documents compared with the hcloud-network binary"
fi

echo "-- same root keys as hcloud-ssh-keys"
# The real agent on a --root tree per document: its managed block must hold exactly the keys
# NixOS would write.
keys_bin=target/x86_64-unknown-linux-musl/release/hcloud-ssh-keys
if [ -x "$keys_bin" ]; then
  compared=0
  for dir in nix/tests/fixtures/* nix/tests/cases/*; do
    name=$(basename "$dir")
    r=$tmp/keys-$name
    mkdir -p "$r/etc" "$r/root"
    chmod 700 "$r/root"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
    cp "$dir/document.json" "$r/etc/hcloud-metadata.json"
    if ! "$keys_bin" --root "$r" >"$tmp/keys.log" 2>&1; then
      fail "hcloud-ssh-keys failed on $name:"; cat "$tmp/keys.log"; continue
    fi
    agent=""
    if [ -f "$r/root/.ssh/authorized_keys" ]; then
      agent=$(sed -n '/^# BEGIN hcloud-ssh-keys/,/^# END hcloud-ssh-keys/p' "$r/root/.ssh/authorized_keys" | sed '1d;$d')
    fi
    nixos=$(settings_of "$root/$dir/document.json" | jq -r '.sshKeys[]')
    if [ "$agent" = "$nixos" ]; then
      pass "root keys $name ($(grep -c . <<<"$nixos" || true) keys)"
      compared=$((compared + 1))
    else
      fail "root keys $name: hcloud-ssh-keys (-) and NixOS (+) differ"
      diff <(echo "$agent") <(echo "$nixos") || true
    fi
  done
  [ "$compared" -ge 10 ] || fail "only $compared documents compared with hcloud-ssh-keys"
fi

echo "-- same hostnames as hcloud-hostname"
# Every name of nix/tests/hostnames/names.json in a document: the name the agent sets (or its
# refusal) must be NixOS' hostName[.domain] (or the dynamic "").
host_bin=target/x86_64-unknown-linux-musl/release/hcloud-hostname
if [ -x "$host_bin" ]; then
  n=$(jq length nix/tests/hostnames/names.json)
  mismatches=0
  for i in $(seq 0 $((n - 1))); do
    r=$tmp/host-$i
    mkdir -p "$r/etc"
    jq --argjson i "$i" --slurpfile names nix/tests/hostnames/names.json '.hostname = $names[0][$i]' \
      nix/tests/fixtures/dual-stack/document.json >"$r/etc/hcloud-metadata.json"
    agent="(refused)"
    if "$host_bin" --root "$r" >"$tmp/host.log" 2>&1; then agent=$(cat "$r/etc/hostname"); fi
    nixos=$(settings_of "$r/etc/hcloud-metadata.json" |
      jq -r 'if .hostName == "" then "(refused)" else .hostName + (if .domain then "." + .domain else "" end) end')
    if [ "$agent" != "$nixos" ]; then
      fail "hostname $(jq --argjson i "$i" '.[$i]' nix/tests/hostnames/names.json): hcloud-hostname sets '$agent', NixOS '$nixos'"
      mismatches=$((mismatches + 1))
    fi
  done
  [ "$mismatches" -eq 0 ] && pass "hostnames: hcloud-hostname and NixOS agree on $n names"
else
  fail "$host_bin is missing"
fi

echo "-- module, stub evaluation"
if out=$(eval_json nix/tests/module.nix --argstr root "$root" -A failed 2>&1) && [ "$(jq -r 'length' <<<"$out")" = 0 ]; then
  pass "module ($(eval_json nix/tests/module.nix --argstr root "$root" -A count) assertions)"
else
  fail "module"; jq -r '.[]?' <<<"$out" 2>/dev/null || echo "$out"
fi

echo "-- NixOS module system (nix/tests/nixos)"
# nixpkgs' lib at the pinned commit: from ../shared/vendor beside the checkout (CI, offline), else
# downloaded from GitHub (NIXPKGS_LIB_URL: another place for the same tarball, e.g. a mirror);
# either way its lib/ must have the pinned NAR hash.
pin=nix/tests/nixpkgs-lib.json
pinned() { jq -er ".$1" "$pin"; }
nixpkgs_lib() { # prints the lib/ directory, or fails saying what is missing
  local vendored url got dir
  vendored=$(cd "$root/.." && pwd)/shared/vendor/$(pinned vendored)
  url=${NIXPKGS_LIB_URL:-$(pinned url)}
  mkdir -p "$tmp/nixpkgs-lib"
  if [ -f "$vendored" ]; then
    tar --zstd -xf "$vendored" -C "$tmp/nixpkgs-lib" || { echo "cannot unpack $vendored" >&2; return 1; }
  elif command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$tmp/nixpkgs-lib.tar.gz" "$url" ||
      { echo "$vendored does not exist and downloading $url failed" >&2; return 1; }
    tar -xzf "$tmp/nixpkgs-lib.tar.gz" -C "$tmp/nixpkgs-lib" || { echo "cannot unpack $url" >&2; return 1; }
  else
    echo "nixpkgs' lib is needed: put $(pinned vendored) in $root/../shared/vendor, or install curl to download $url" >&2
    return 1
  fi
  dir=$(find "$tmp/nixpkgs-lib" -mindepth 2 -maxdepth 2 -name lib -type d | head -n1)
  if [ -z "$dir" ] || [ ! -f "$dir/default.nix" ]; then
    echo "no lib/default.nix in the nixpkgs lib tarball" >&2
    return 1
  fi
  got=$(nix hash path "$dir")
  [ "$got" = "$(pinned libNarHash)" ] ||
    { echo "nixpkgs lib at $dir has hash $got, $pin pins $(pinned libNarHash)" >&2; return 1; }
  echo "$dir"
}
# The image's /etc/nixos per architecture, written by the build's own script, with the generated
# hardware configuration beside it: $tmp/KIND/image-<arch>, printed as eval.nix's `images`.
image_trees() { # KIND: placeholder (offline: the staged tree is not read) or staged (full nixpkgs)
  local a kind=$1 up=$tmp/$1/upload
  mkdir -p "$up/agents"
  cp -r packer/nixos "$up/nixos"
  cp -r nix systemd "$up/agents/"
  cp -r packer/nixos/default-config "$up/user"
  for a in x86_64 aarch64; do
    rm -rf "$up/dist"
    if [ "$kind" = staged ]; then
      cargo run -q --locked -p hcloud-image -- dist --no-build --arch "$a" --out "$up/dist" >/dev/null ||
        { echo "hcloud-image dist --no-build --arch $a failed (build the agents for $a first)" >&2; return 1; }
    else
      mkdir -p "$up/dist/usr/share/hcloud-agents"
      echo '{}' >"$up/dist/usr/share/hcloud-agents/manifest.json"
    fi
    bash packer/scripts/nixos-etc.sh "$tmp/$kind/image-$a" "$up" /dev/sda nixos-26.05 >/dev/null || return 1
    cp "nix/tests/nixos/hardware/$a.nix" "$tmp/$kind/image-$a/hardware-configuration.nix"
  done
  printf '{"x86_64":"%s","aarch64":"%s"}' "$tmp/$kind/image-x86_64" "$tmp/$kind/image-aarch64"
}
run_scenarios() { # MODE, then eval.nix's arguments after root
  local mode=$1 s out scenarios
  shift
  local args=(nix/tests/nixos/eval.nix --argstr root "$root" "$@")
  scenarios=$(eval_json "${args[@]}" -A names | jq -r '.[]')
  [ "$(grep -c . <<<"$scenarios")" -ge 12 ] || fail "only $(grep -c . <<<"$scenarios") NixOS scenarios (expected at least 12)"
  for s in $scenarios; do
    if ! out=$(eval_json "${args[@]}" -A "scenarios.$s" 2>"$tmp/eval.err"); then
      fail "NixOS $s ($mode) does not evaluate:"; grep -v '^trace: warning' "$tmp/eval.err" | head -n 12 | sed 's/^/    /'
    elif [ "$(jq '.failed | length' <<<"$out")" = 0 ]; then
      pass "NixOS $s ($mode: $(jq .count <<<"$out") checks, $(jq '.warnings | length' <<<"$out") warnings)"
    else
      fail "NixOS $s ($mode):"; jq -r '.failed[]' <<<"$out" | sed 's/^/    /'
    fi
  done
}
offline_args=()
if ! lib_dir=$(nixpkgs_lib); then
  fail "nixpkgs lib (pinned in $pin) unavailable: the module system checks cannot run"
elif ! images=$(image_trees placeholder); then
  fail "the image's /etc/nixos could not be written"
else
  echo "offline: lib.evalModules of nixpkgs lib $(pinned version) ($(pinned repository) $(pinned commit | cut -c1-12)) with typed stand-ins of the NixOS options"
  offline_args=(--argstr libPath "$lib_dir" --argstr images "$images")
  run_scenarios offline "${offline_args[@]}"
  # The stand-ins refuse what nixpkgs refuses (nix/tests/nixos/refused.nix).
  refused_args=(nix/tests/nixos/eval.nix --argstr root "$root" "${offline_args[@]}")
  for c in $(eval_json "${refused_args[@]}" -A refusedErrors | jq -r 'keys[]'); do
    want=$(eval_json "${refused_args[@]}" -A "refusedErrors.$c" | jq -r .)
    if eval_json "${refused_args[@]}" -A "refused.$c" >/dev/null 2>"$tmp/eval.err"; then
      fail "stand-ins: $c evaluates, but nixpkgs refuses it"
    elif grep -qF -- "$want" "$tmp/eval.err"; then
      pass "stand-ins refuse $c"
    else
      fail "stand-ins: $c fails without naming '$want':"; head -n 8 "$tmp/eval.err" | sed 's/^/    /'
    fi
  done
fi
if [ -n "${NIXPKGS:-}" ]; then
  echo "full nixpkgs ($NIXPKGS): nixos/lib/eval-config.nix, config.system.build.toplevel.drvPath"
  nix_version=$(nix-instantiate --version | sed 's/.* //')
  if [ "$(printf '%s\n2.18\n' "$nix_version" | sort -V | head -n1)" != 2.18 ]; then
    fail "nixpkgs needs Nix >= 2.18 to evaluate, this nix-instantiate is $nix_version"
  elif ! full_images=$(image_trees staged); then
    fail "the image's /etc/nixos could not be written for the full nixpkgs"
  else
    run_scenarios nixpkgs --argstr nixpkgs "$NIXPKGS" --argstr images "$full_images"
  fi
else
  echo "full nixpkgs: not given, so only the offline mode above was evaluated (NIXPKGS=PATH or -I nixpkgs=PATH adds nixos/lib/eval-config.nix down to the toplevel's drvPath)"
fi

echo "-- NixOS image build: system.stateVersion, garbage, memory"
# system.stateVersion is concrete at install time: nixos-unstable gets its <nixpkgs>' release.
release_nixpkgs=${lib_dir:+$(dirname "$lib_dir")}
if [ -n "$release_nixpkgs" ]; then
  expected=$(nix-instantiate --eval --expr "(import $release_nixpkgs/lib).trivial.release" | tr -d '"') || expected=""
  if NIX_PATH=nixpkgs=$release_nixpkgs bash packer/scripts/nixos-etc.sh "$tmp/etc-unstable" "$tmp/placeholder/upload" /dev/sda nixos-unstable >/dev/null 2>"$tmp/etc.err" &&
    [ "$(jq -r .stateVersion "$tmp/etc-unstable/image-settings.json")" = "$expected" ] &&
    [[ "$expected" =~ ^[0-9][0-9][.][0-9][0-9]$ ]]; then
    pass "nixos-unstable: image-settings.json has stateVersion $expected, the channel's release"
  else
    fail "nixos-unstable: stateVersion '$(jq -r .stateVersion "$tmp/etc-unstable/image-settings.json" 2>/dev/null)', expected '$expected'"; cat "$tmp/etc.err"
  fi
else
  fail "no nixpkgs lib for the nixos-unstable stateVersion check"
fi
if NIX_PATH=nixpkgs=/nonexistent bash packer/scripts/nixos-etc.sh "$tmp/etc-none" "$tmp/placeholder/upload" /dev/sda nixos-unstable >/dev/null 2>"$tmp/etc.err"; then
  fail "nixos-etc.sh wrote /etc/nixos for nixos-unstable without a <nixpkgs> to take the release from"
elif grep -q 'nixos-unstable' "$tmp/etc.err"; then
  pass "nixos-unstable without <nixpkgs>: refused, naming the channel"
else
  fail "nixos-unstable without <nixpkgs>: unclear error: $(cat "$tmp/etc.err")"
fi
# The image never falls back to lib.trivial.release (which moves on nixos-unstable).
if [ "${#offline_args[@]}" -gt 0 ]; then
  cp -r "$tmp/placeholder/image-x86_64" "$tmp/image-no-state"
  jq '.stateVersion = ""' "$tmp/placeholder/image-x86_64/image-settings.json" >"$tmp/image-no-state/image-settings.json"
  no_state=(nix/tests/nixos/eval.nix --argstr root "$root" --argstr libPath "$lib_dir"
    --argstr images "$(jq -c --arg d "$tmp/image-no-state" '.x86_64 = $d' <<<"$images")")
  if got=$(eval_json "${no_state[@]}" -A configs.image-x86_64.system.stateVersion 2>"$tmp/eval.err"); then
    fail "an image without a stateVersion in image-settings.json evaluates to system.stateVersion $got"
  elif grep -q 'stateVersion' "$tmp/eval.err"; then
    pass "an image without a stateVersion does not evaluate, and the error names it"
  else
    fail "an image without a stateVersion: unclear error"; head -5 "$tmp/eval.err"
  fi
fi
# packer/scripts/nixos.sh cannot run here (rescue system, network); the order of its steps is
# checked: swap before nixos-install, garbage collected in the installed system after it and
# before the installer (and its swap) is removed, and the template passes the swap size.
# The patterns are nixos.sh's and the template's own text, not expanded here.
# shellcheck disable=SC2016
{
  line_of() { grep -n -m1 -F -- "$1" packer/scripts/nixos.sh | cut -d: -f1 || true; }
  swapon_l=$(line_of 'swapon "$installer/swapfile"')
  install_l=$(line_of 'nixos-install --root "$target"')
  gc_l=$(line_of "nixos-enter --root \"\$target\" -c 'nix-collect-garbage -d'")
  rm_l=$(line_of 'rm -rf "${installer:?}"')
  if [ -n "$swapon_l" ] && [ -n "$install_l" ] && [ -n "$gc_l" ] && [ -n "$rm_l" ] &&
    [ "$swapon_l" -lt "$install_l" ] && [ "$install_l" -lt "$gc_l" ] && [ "$gc_l" -lt "$rm_l" ]; then
    pass "nixos.sh: swap on for nixos-install, garbage collected before the snapshot"
  else
    fail "nixos.sh: expected swapon < nixos-install < nix-collect-garbage < removing the installer (lines: ${swapon_l:-none} ${install_l:-none} ${gc_l:-none} ${rm_l:-none})"
  fi
  if grep -q '"INSTALL_SWAP_MIB=${var.install-swap-mib}"' packer/nixos.pkr.hcl; then
    pass "packer/nixos.pkr.hcl passes install-swap-mib to nixos.sh"
  else
    fail "packer/nixos.pkr.hcl does not pass install-swap-mib to nixos.sh"
  fi
}

echo "-- unit file reader"
if out=$(eval_json nix/tests/ini.nix -A failed 2>&1) && [ "$(jq -r 'length' <<<"$out")" = 0 ]; then
  pass "systemd-ini ($(eval_json nix/tests/ini.nix -A count) assertions)"
else
  fail "systemd-ini"; jq -r '.[]?' <<<"$out" 2>/dev/null || echo "$out"
fi

echo "-- flake, stub evaluation"
if out=$(eval_json nix/tests/flake.nix -A failed 2>&1) && [ "$(jq -r 'length' <<<"$out")" = 0 ]; then
  pass "flake ($(eval_json nix/tests/flake.nix -A count) assertions)"
else
  fail "flake"; jq -r '.[]?' <<<"$out" 2>/dev/null || echo "$out"
fi

echo "-- pure evaluation reads no document"
# Pure evaluation (flakes without --impure) may not read absolute paths: the function is
# inlined into the expression, as a flake would have it in its own source.
doc=$root/nix/tests/fixtures/dual-stack/document.json
lib_expr=$(cat nix/lib/hcloud.nix)
got=$(eval_json --option pure-eval true -E "let h = $lib_expr; in h.readDocument \"$doc\"" 2>&1) || true
if [ "$got" = null ]; then pass "pure eval: the document is treated as absent"; else fail "pure eval gave: $got"; fi
got=$(eval_json -E "let h = $lib_expr; in (h.readDocument \"$doc\").instance_id" 2>&1) || true
if [ "$got" = 48151623 ]; then pass "impure eval: the document is read"; else fail "impure eval gave: $got"; fi
got=$(eval_json -E "let h = $lib_expr; in h.readDocument \"$root/nonexistent.json\"" 2>&1) || true
if [ "$got" = null ]; then pass "impure eval: a missing document is absent"; else fail "missing document gave: $got"; fi

echo "-- package"
if out=$(eval_json nix/tests/package.nix --argstr root "$root" -A failed 2>&1) && [ "$(jq -r 'length' <<<"$out")" = 0 ]; then
  pass "package ($(eval_json nix/tests/package.nix --argstr root "$root" -A count) assertions)"
else
  fail "package"; jq -r '.[]?' <<<"$out" 2>/dev/null || echo "$out"
fi

echo "-- package postInstall on systemd/"
# The install step of the derivation, run here on a copy of systemd/ with stand-in binaries.
install_script=$(eval_json nix/tests/package.nix --argstr root "$root" -A postInstall | jq -r .)
run_install() { # srcdir outdir
  mkdir -p "$2/bin"
  for a in $(eval_json nix/tests/package.nix --argstr root "$root" -A agents | jq -r '.[]'); do
    printf '#!/bin/sh\n' >"$2/bin/$a"; chmod +x "$2/bin/$a"
  done
  # `cargo run -p hcloud-image -- ARGS` is the workspace's hcloud-image with ARGS.
  (cd "$1" && out=$2 HCLOUD_IMAGE="$root/target/debug/hcloud-image" bash -euo pipefail -c \
    'cargo() {
      case " $* " in *" run "*"-p hcloud-image "*"-- "*) ;; *) echo "unexpected: cargo $*" >&2; return 1 ;; esac
      while [ "$1" != -- ]; do shift; done
      shift
      "$HCLOUD_IMAGE" "$@"
    }
    '"$install_script")
}
cargo build --quiet --locked -p hcloud-image || fail "cannot build hcloud-image for the package's manual pages"
mkdir -p "$tmp/src"
cp -r systemd "$tmp/src/"
if run_install "$tmp/src" "$tmp/out" >"$tmp/install.log" 2>&1; then
  ok_layout=1
  for f in systemd/*; do
    b=$(basename "$f")
    case "$b" in
      *.service | *.timer | *.path | *.target | *.socket) dest=$tmp/out/lib/systemd/system/$b ;;
      *.rules) dest=$tmp/out/lib/udev/rules.d/$b ;;
      *.preset) dest=$tmp/out/lib/systemd/system-preset/$b ;;
      *.network) dest=$tmp/out/lib/systemd/network/$b ;;
      *) dest=/nonexistent ;;
    esac
    [ -f "$dest" ] || { fail "postInstall did not install $f"; ok_layout=0; continue; }
    if grep -q '/usr/bin/' "$dest"; then fail "$dest still refers to /usr/bin"; ok_layout=0; fi
    if grep -q '/usr/bin/hcloud-' "$f" && ! grep -q "$tmp/out/bin/hcloud-" "$dest"; then
      fail "$dest does not run the package's binaries"; ok_layout=0
    fi
  done
  [ "$ok_layout" = 1 ] && pass "postInstall lays out $(find "$tmp/out/lib" -type f | wc -l) files with store paths"
  for a in $(eval_json nix/tests/package.nix --argstr root "$root" -A agents | jq -r '.[]'); do
    if problems=$(manuals_installed "$tmp/out" "" "$a" 8 share/zsh/site-functions); then
      pass "postInstall: $a's manual page and completions"
    else
      fail "postInstall: $problems"
    fi
  done
else
  fail "postInstall failed:"; cat "$tmp/install.log"
fi
# The guard: a unit that runs a program outside the store fails the build.
mkdir -p "$tmp/bad/systemd"
printf '[Service]\nExecStart=/usr/bin/true\n' >"$tmp/bad/systemd/x.service"
if run_install "$tmp/bad" "$tmp/badout" >/dev/null 2>&1; then
  fail "postInstall accepted a unit that runs /usr/bin/true"
else
  pass "postInstall refuses a unit that runs a program outside the store"
fi

echo "nix checks: $failed failed"
[ "$failed" -eq 0 ]
