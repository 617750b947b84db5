#!/usr/bin/env bash
# Static checks of the image templates (no network, no Hetzner):
#   - shellcheck on every provisioning script
#   - packer fmt -check on the templates
#   - packer validate (Debian's packer 1.6.6, built-in hcloud builder) of each template, on a
#     copy without what 1.6.6 does not know (scripts/lib/packer-1.6.6.awk): the packer {} block
#     (required_plugins), the variable validation blocks (1.6.6 evaluates them without
#     functions) and the plugin-only options upgrade_server_type, server_labels and
#     ssh_keys_labels. It still checks every other builder option, the expressions, and that
#     every uploaded file exists. The Rust tests (crates/hcloud-image/tests/templates.rs) check
#     the removed parts.
#   - the pinned Arch Linux release key: its fingerprint, and that it is the key Debian's
#     archlinux-keyring ships
#   - the NixOS files parse (nix-instantiate --parse)
set -euo pipefail
cd "$(dirname "$0")/../.."
# No version check against HashiCorp's servers: the checks stay offline.
export CHECKPOINT_DISABLE=1

fail=0
step() { echo "-- $*"; }
bad() { echo "FAILED: $*"; fail=1; }

step "shellcheck packer/scripts/*.sh scripts/checks/images.sh"
shellcheck packer/scripts/*.sh scripts/checks/images.sh || bad "shellcheck"

step "packer fmt -check packer/"
packer fmt -check packer/ || bad "packer fmt (run: packer fmt packer/)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "staged tree for validation (hcloud-image dist --no-build)"
if cargo run -q --locked -p hcloud-image -- dist --no-build --out "$tmp/dist" >/dev/null; then
  cp -r packer "$tmp/packer"
  cp -r nix systemd pkg "$tmp/"
  for t in archlinux nixos debian; do
    step "packer validate $t (packer $(packer version | head -n1))"
    awk -f scripts/lib/packer-1.6.6.awk "packer/$t.pkr.hcl" >"$tmp/packer/validate-$t.pkr.hcl"
    grep -q 'required_plugins\|validation {' "$tmp/packer/validate-$t.pkr.hcl" && bad "$t: reduction left blocks behind"
    if (cd "$tmp/packer" && HCLOUD_TOKEN=dummy packer validate -var "dist-dir=$tmp/dist" "validate-$t.pkr.hcl"); then
      echo "packer validate $t: ok"
    else
      bad "packer validate $t"
    fi
  done
  for t in nixos debian; do
    step "packer validate $t for aarch64"
    (cd "$tmp/packer" && HCLOUD_TOKEN=dummy packer validate -var "dist-dir=$tmp/dist" -var arch=aarch64 "validate-$t.pkr.hcl") ||
      bad "packer validate $t -var arch=aarch64"
  done
  # Combinations that would only fail once the build server exists must stop packer first.
  mkdir -p "$tmp/no-config"
  for case in "nixos debian|arch=aarch64 server-type=cx23|server type cx23 is not for aarch64" \
    "nixos debian|server-type=cax11|server type cax11 is not for x86_64" \
    "nixos debian|arch=aarch64 upgrade-server-type=cpx32|upgrade server type cpx32 is not for aarch64" \
    "nixos debian|upgrade-server-type=cax21|upgrade server type cax21 is not for x86_64" \
    "nixos|nix-config-path=$tmp/no-config|no-config has no configuration.nix"; do
    templates=${case%%|*} rest=${case#*|}
    vars=${rest%%|*} want=${rest#*|} args=()
    for v in $vars; do args+=(-var "$v"); done
    for t in $templates; do
      step "packer validate $t refuses ${vars}"
      if out=$(cd "$tmp/packer" && HCLOUD_TOKEN=dummy packer validate -var "dist-dir=$tmp/dist" "${args[@]}" "validate-$t.pkr.hcl" 2>&1); then
        bad "$t: packer validate accepted $vars"
      elif ! tr -s ' \n' ' ' <<<"$out" | grep -qF "$want"; then
        bad "$t: packer validate refused $vars without saying \"$want\": $out"
      fi
    done
  done
else
  bad "hcloud-image dist --no-build (build the static agents first: cargo build --release --target x86_64-unknown-linux-musl --workspace --bins)"
fi

step "pinned Arch Linux release key"
fpr=3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C
export GNUPGHOME="$tmp/gnupg"
mkdir -m 0700 "$GNUPGHOME"
keys=$(gpg --batch --with-colons --show-keys packer/keys/archlinux-release.asc | awk -F: '$1 == "fpr" { print $10; exit }')
[ "$keys" = "$fpr" ] || bad "packer/keys/archlinux-release.asc holds $keys, not $fpr"
gpg --batch -q --import /usr/share/keyrings/archlinux.gpg 2>/dev/null
gpg --batch --export "$fpr" >"$tmp/debian.gpg"
gpg --batch --dearmor <packer/keys/archlinux-release.asc >"$tmp/pinned.gpg"
if cmp -s <(gpg --batch --with-colons --show-keys "$tmp/debian.gpg" | grep -E '^(pub|fpr|sub)') \
  <(gpg --batch --with-colons --show-keys "$tmp/pinned.gpg" | grep -E '^(pub|fpr|sub)'); then
  echo "the pinned key is $fpr, as in Debian's archlinux-keyring"
else
  bad "the pinned key differs from Debian's archlinux-keyring copy of $fpr"
fi

step "nix-instantiate --parse packer/nixos/**/*.nix"
while IFS= read -r f; do
  nix-instantiate --parse "$f" >/dev/null 2>"$tmp/nix.err" || { cat "$tmp/nix.err"; bad "$f does not parse"; }
done < <(find packer/nixos -name '*.nix')

step "packer/nixos/agents-from-dist.nix: the package made from a staged tree"
if [ -d "$tmp/dist" ]; then
  # A private store: works as any user and leaves the machine's Nix alone.
  export NIX_STORE_DIR=$tmp/nix/store NIX_STATE_DIR=$tmp/nix/state NIX_LOG_DIR=$tmp/nix/log NIX_CONF_DIR=$tmp/nix/conf
  mkdir -p "$NIX_CONF_DIR" "$tmp/nixpkg"
  printf 'build-users-group =\n' >"$NIX_CONF_DIR/nix.conf"
  cp packer/nixos/agents-from-dist.nix "$tmp/nixpkg/"
  cp -r "$tmp/dist" "$tmp/nixpkg/dist"
  pkg_expr() { # cpu
    cat <<NIX
import $tmp/nixpkg/agents-from-dist.nix {
  lib = {
    assertMsg = ok: msg: if ok then true else throw msg;
    escapeShellArgs = builtins.concatStringsSep " ";
  };
  stdenv.hostPlatform.parsed.cpu.name = "$1";
  runCommand = name: attrs: script: { inherit name script; };
  systemd = "/nix/store/00000000000000000000000000000000-systemd";
}
NIX
  }
  if script=$(nix-instantiate --read-write-mode --eval --strict --json -E "($(pkg_expr x86_64)).script" 2>"$tmp/nix.err" | jq -r .); then
    out=$tmp/pkgout
    if out=$out bash -euc "$script"; then
      want=$(jq -r '.binaries[]' "$tmp/dist/usr/share/hcloud-agents/manifest.json" | sort)
      got=$(find "$out/bin" -type f -perm -0100 -printf '%f\n' | sort)
      [ "$want" = "$got" ] || bad "agents-from-dist: bin/ holds '$got', the tree '$want'"
      units=$(find "$out/lib/systemd/system" -maxdepth 1 -type f | wc -l)
      [ "$units" -gt 0 ] || bad "agents-from-dist: no units in lib/systemd/system"
      if grep -rn '/usr/bin/' "$out/lib" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*[#;]'; then
        bad "agents-from-dist: units still run programs from /usr/bin"
      fi
      grep -rqs "ExecStart=$out/bin/hcloud-" "$out/lib/systemd/system" ||
        bad "agents-from-dist: no ExecStart points into the package"
      echo "agents-from-dist: $(wc -w <<<"$got") agents, $units units, programs in the store"
    else
      bad "agents-from-dist: the build script failed"
    fi
  else
    cat "$tmp/nix.err"
    bad "agents-from-dist.nix does not evaluate"
  fi
  if nix-instantiate --read-write-mode --eval --strict -E "($(pkg_expr aarch64)).name" >/dev/null 2>"$tmp/nix.err"; then
    bad "agents-from-dist: an x86_64 tree was accepted for aarch64"
  elif ! grep -q "run hcloud-image dist --arch aarch64" "$tmp/nix.err"; then
    cat "$tmp/nix.err"
    bad "agents-from-dist: the architecture mismatch does not say what to do"
  fi
fi

[ "$fail" -eq 0 ] && echo "images: all checks passed"
exit "$fail"
