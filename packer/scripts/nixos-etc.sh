#!/usr/bin/env bash
# Write the NixOS image's /etc/nixos (everything but hardware-configuration.nix, which
# nixos-generate-config writes): configuration.nix importing hcloud-image.nix (image settings,
# the agents module from nix/ with the agents from the staged tree) and the user's directory,
# and image-settings.json with the build's variables.
#
# system.stateVersion is written as a concrete release: the channel's (nixos-YY.MM), or for
# nixos-unstable the release of the nixpkgs in NIX_PATH (`<nixpkgs/lib>`, the channel just
# added), so that it does not move with every later rebuild.
#
# Usage: nixos-etc.sh ETC HCLOUD DISK CHANNEL
#        nixos-etc.sh --check HCLOUD      (only check the uploads, before anything is installed)
#   ETC: the target's /etc/nixos; HCLOUD: the uploaded directory (nixos/, agents/nix,
#   agents/systemd, dist/, user/)
# Environment: LOCALE, KEYMAP, TIMEZONE, EXTRA_PACKAGES, SWAP_SIZE_MIB
set -euo pipefail

die() { echo "nixos-etc.sh: $*" >&2; exit 1; }
check_uploads() { # HCLOUD
  local d
  for d in nixos dist agents/nix agents/systemd user; do
    [ -d "$1/$d" ] || die "$1/$d was not uploaded"
  done
  [ -f "$1/user/configuration.nix" ] || die "the NixOS configuration directory has no configuration.nix"
  case "${SWAP_SIZE_MIB:-0}" in '' | *[!0-9]*) die "SWAP_SIZE_MIB must be a number, got '${SWAP_SIZE_MIB:-}'" ;; esac
}
if [ "${1:-}" = --check ] && [ "$#" -eq 2 ]; then
  check_uploads "$2"
  exit 0
fi
[ "$#" -eq 4 ] || die "usage: $0 ETC HCLOUD DISK CHANNEL, or $0 --check HCLOUD"
etc=$1
hcloud=$2
disk=$3
channel=$4
check_uploads "$hcloud"
swap=${SWAP_SIZE_MIB:-0}

is_release() { [[ "$1" =~ ^[0-9][0-9][.][0-9][0-9]$ ]]; }
state=${channel#nixos-}
if ! is_release "$state"; then
  state=$(nix-instantiate --eval --expr '(import <nixpkgs/lib>).trivial.release' 2>&1 | tr -d '"') ||
    die "cannot read the release of <nixpkgs> for channel $channel: $state"
  # nixos-unstable's lib says e.g. 26.11: the release it becomes.
  is_release "$state" || die "the release of <nixpkgs> for channel $channel is '$state', not YY.MM"
fi

mkdir -p "$etc/hcloud-agents" "$etc/user"
cp "$hcloud/nixos/hcloud-image.nix" "$etc/"
cp "$hcloud/nixos/agents-from-dist.nix" "$etc/hcloud-agents/"
cp -a "$hcloud/agents/nix" "$hcloud/agents/systemd" "$hcloud/dist" "$etc/hcloud-agents/"
cp -a "$hcloud/user/." "$etc/user/"
json_list() {
  local first=1 w
  printf '['
  for w in "$@"; do
    [ "$first" -eq 1 ] || printf ', '
    printf '"%s"' "$w"
    first=0
  done
  printf ']'
}
read -r -a extra <<<"${EXTRA_PACKAGES:-}"
cat >"$etc/image-settings.json" <<JSON
{
  "disk": "$disk",
  "locale": "${LOCALE:-C.UTF-8}",
  "keymap": "${KEYMAP:-us}",
  "timezone": "${TIMEZONE:-UTC}",
  "swapSizeMiB": $swap,
  "extraPackages": $(json_list "${extra[@]}"),
  "stateVersion": "$state"
}
JSON
cat >"$etc/configuration.nix" <<'NIX'
# Written by the image build. Your own settings belong in ./user/configuration.nix (the
# directory given to the build as nix-config-path); ./hcloud-image.nix holds the image's.
{ ... }:
{
  imports = [
    ./hardware-configuration.nix
    ./hcloud-image.nix
    ./user/configuration.nix
  ];
}
NIX
echo "nixos-etc.sh: $etc written (system.stateVersion $state)"
