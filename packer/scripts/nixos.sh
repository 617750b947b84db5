#!/usr/bin/env bash
# Install NixOS onto the disk that disk.sh mounted at TARGET, from Hetzner's rescue system:
#   1. Nix (pinned version, tarball checked against a pinned SHA-256) in the rescue system, with
#      its store on the target disk (/nix is bind-mounted from TARGET/installer: the rescue system
#      is a RAM disk too small for it)
#   2. the NixOS channel, nixos-install-tools, hardware-configuration.nix (no file systems: the
#      image declares them by label)
#   3. /etc/nixos: configuration.nix importing hcloud-image.nix (image settings, the agents
#      module from nix/ with the agents from the staged tree) and the user's directory
#   4. nixos-install, with swap and temporary files on the target disk (4 GB build servers:
#      the rescue system's root is a RAM disk), then garbage collection in the installed system
#      (the build-time inputs nixos-install left in its store), and the installer is removed
#
# Usage: nixos.sh TARGET DISK
# Environment: NIX_VERSION, NIX_SHA256 (of nix-<version>-<arch>-linux.tar.xz), NIX_MIRROR (where
#   it is downloaded from, default https://releases.nixos.org/nix), NIXOS_CHANNEL,
#   ARCH, LOCALE, KEYMAP, TIMEZONE, EXTRA_PACKAGES, SWAP_SIZE_MIB, INSTALL_SWAP_MIB (swap while
#   installing, default 2048, 0 for none)
set -euo pipefail

die() { echo "nixos.sh: $*" >&2; exit 1; }
[ "$#" -eq 2 ] || die "usage: $0 TARGET DISK"
target=${1%/}
disk=$2
here=$(cd "$(dirname "$0")" && pwd)
hcloud=$(dirname "$here")
nix_version=${NIX_VERSION:?NIX_VERSION is not set}
nix_sha256=${NIX_SHA256:?NIX_SHA256 is not set}
nix_mirror=${NIX_MIRROR:-https://releases.nixos.org/nix}
channel=${NIXOS_CHANNEL:?NIXOS_CHANNEL is not set}
arch=${ARCH:-$(uname -m)}
install_swap=${INSTALL_SWAP_MIB:-2048}
case "$install_swap" in '' | *[!0-9]*) die "INSTALL_SWAP_MIB must be a number, got '$install_swap'" ;; esac

mountpoint -q "$target" || die "$target is not mounted (run disk.sh first)"
[ "$arch" = "$(uname -m)" ] || die "ARCH=$arch but the build server is $(uname -m)"
bash "$here/nixos-etc.sh" --check "$hcloud"

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v xz >/dev/null || missing+=(xz-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# 1. Nix, its store on the target disk.
installer=$target/installer
mkdir -p "$installer/nix" /nix
mount --bind "$installer/nix" /nix
cleanup() {
  swapoff "$installer/swapfile" 2>/dev/null || true
  umount /nix 2>/dev/null || true
}
trap cleanup EXIT

tarball=nix-$nix_version-$arch-linux.tar.xz
url=${nix_mirror%/}/nix-$nix_version/$tarball
echo "nixos.sh: downloading $url"
curl -fsSL --retry 5 --retry-delay 5 -o "$installer/$tarball" "$url"
echo "$nix_sha256  $installer/$tarball" | sha256sum --check --strict ||
  die "$tarball does not have the pinned SHA-256 $nix_sha256"
tar -xJf "$installer/$tarball" -C "$installer"
export USER=root HOME=/root
# Single-user Nix as root: no build users in the rescue system.
mkdir -p /etc/nix
# Builds in a directory on the target disk (build-dir), not in the rescue system's RAM disk.
mkdir -p "$installer/build"
printf 'build-users-group =\nexperimental-features = nix-command\nbuild-dir = %s\n' "$installer/build" >/etc/nix/nix.conf
"$installer/nix-$nix_version-$arch-linux/install" --no-daemon --no-channel-add --no-modify-profile
export PATH=/root/.nix-profile/bin:$PATH

# 2. Channel and installer tools.
nix-channel --add "https://nixos.org/channels/$channel" nixos
nix-channel --update
export NIX_PATH=nixpkgs=/root/.nix-defexpr/channels/nixos:nixos-config=$target/etc/nixos/configuration.nix
nix-env -f '<nixpkgs>' -iA nixos-install-tools
nixos-generate-config --root "$target" --no-filesystems

# 3. /etc/nixos (with a concrete system.stateVersion, also for nixos-unstable).
bash "$here/nixos-etc.sh" "$target/etc/nixos" "$hcloud" "$disk" "$channel"

# 4. Install. A 4 GB build server (cx23, cax11) shares its RAM with the rescue system's RAM
# disk, tight for evaluating and building a NixOS system: swap on the target disk (and the
# builds there too, build-dir above). Both go with the installer.
if [ "$install_swap" -gt 0 ]; then
  fallocate -l "${install_swap}M" "$installer/swapfile"
  chmod 0600 "$installer/swapfile"
  mkswap -q "$installer/swapfile"
  swapon "$installer/swapfile"
fi
nixos-install --root "$target" --no-root-passwd
# nixos-install builds in the target's store: what the system does not reference (build-time
# inputs) is garbage the snapshot would carry to every server. Collected by the installed
# system's own Nix, with its own roots (the system profile, root's channel).
nixos-enter --root "$target" -c 'nix-collect-garbage -d'
swapoff "$installer/swapfile" 2>/dev/null || true
umount /nix
trap - EXIT
rm -rf "${installer:?}"
echo "nixos.sh: NixOS ($channel) installed on $target"
