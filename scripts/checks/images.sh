#!/usr/bin/env bash
# Static checks of the image templates (no network, no Hetzner):
#   - shellcheck on every provisioning script
#   - packer fmt -check on the templates
#   - packer validate (Debian's packer 1.6.6, built-in hcloud builder) of each template, on a
#     copy without what 1.6.6 does not know: the packer {} block (required_plugins), the
#     variable validation blocks (1.6.6 evaluates them without functions) and the plugin-only
#     options upgrade_server_type and server_labels. It still checks every other builder
#     option, the expressions, and that every uploaded file exists. The Rust tests
#     (crates/hcloud-image/tests/templates.rs) check the removed parts.
#   - the pinned Arch Linux release key: its fingerprint, and that it is the key Debian's
#     archlinux-keyring ships
#   - the NixOS files parse (nix-instantiate --parse)
set -euo pipefail
cd "$(dirname "$0")/../.."

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
  cp -r nix systemd "$tmp/"
  for t in archlinux nixos; do
    step "packer validate $t (packer $(packer version | head -n1))"
    awk '
      /^packer \{/ { skip = 1; depth = 0 }
      /^[[:space:]]*validation \{/ { skip = 1; depth = 0 }
      skip { depth += gsub(/\{/, "{"); depth -= gsub(/\}/, "}"); if (depth <= 0) skip = 0; next }
      /^[[:space:]]*(upgrade_server_type|server_labels)[[:space:]]*=/ { next }
      { print }
    ' "packer/$t.pkr.hcl" >"$tmp/packer/validate-$t.pkr.hcl"
    grep -q 'required_plugins\|validation {' "$tmp/packer/validate-$t.pkr.hcl" && bad "$t: reduction left blocks behind"
    if (cd "$tmp/packer" && HCLOUD_TOKEN=dummy packer validate -var "dist-dir=$tmp/dist" "validate-$t.pkr.hcl"); then
      echo "packer validate $t: ok"
    else
      bad "packer validate $t"
    fi
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

[ "$fail" -eq 0 ] && echo "images: all checks passed"
exit "$fail"
