#!/usr/bin/env bash
# Install Arch Linux onto the disk that disk.sh mounted at TARGET, from Hetzner's rescue system:
#   1. download the bootstrap tarball (iso/latest or a pinned release) and its signature
#   2. verify the signature against the release key pinned in the repository, with gpgv and a
#      keyring holding only that key (no key server, no auto-retrieval)
#   3. unpack the bootstrap, pacstrap the target from inside it
#   4. configure the target in its chroot (archlinux-configure.sh) and install GRUB
#   5. install the agents of the staged tree as packages pacman owns (archlinux-agents.sh)
# The pacman keyring the build used is removed again: each server makes its own at first boot.
#
# Usage: archlinux.sh TARGET DISK
# Environment: AGENTS_TREE (the staged tree, default /root/hcloud/dist beside scripts/),
#   ARCH_RELEASE (latest | YYYY.MM.DD), ARCH_ISO_MIRROR, ARCH_PACKAGE_MIRRORS
#   (space-separated pacman Server URLs), EXTRA_PACKAGES, and for the configuration LOCALE,
#   KEYMAP, TIMEZONE, SWAP_SIZE_MIB, ROOT_LABEL
set -euo pipefail

die() { echo "archlinux.sh: $*" >&2; exit 1; }
[ "$#" -eq 2 ] || die "usage: $0 TARGET DISK"
target=${1%/}
disk=$2
here=$(cd "$(dirname "$0")" && pwd)
hcloud=$(dirname "$here")
key=$hcloud/keys/archlinux-release.asc
files=$hcloud/files
release=${ARCH_RELEASE:-latest}
iso_mirror=${ARCH_ISO_MIRROR:-https://geo.mirror.pkgbuild.com}
# shellcheck disable=SC2016 # $repo and $arch are pacman's variables, not the shell's
package_mirrors=${ARCH_PACKAGE_MIRRORS:-'https://mirror.hetzner.com/archlinux/$repo/os/$arch https://geo.mirror.pkgbuild.com/$repo/os/$arch'}
work=/root/arch-bootstrap

mountpoint -q "$target" || die "$target is not mounted (run disk.sh first)"
mountpoint -q "$target/efi" || die "$target/efi is not mounted (run disk.sh first)"
[ -f "$key" ] || die "the pinned release key $key is missing"

case "$release" in
  latest)
    file=archlinux-bootstrap-x86_64.tar.zst
    url=$iso_mirror/iso/latest/$file
    ;;
  [0-9][0-9][0-9][0-9].[0-9][0-9].[0-9][0-9])
    file=archlinux-bootstrap-$release-x86_64.tar.zst
    url=$iso_mirror/iso/$release/$file
    ;;
  *) die "ARCH_RELEASE must be 'latest' or a release date YYYY.MM.DD, got '$release'" ;;
esac

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v gpg >/dev/null || missing+=(gnupg)
command -v gpgv >/dev/null || missing+=(gpgv)
command -v zstd >/dev/null || missing+=(zstd)
command -v jq >/dev/null || missing+=(jq)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "archlinux.sh: installing ${missing[*]} in the rescue system"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

rm -rf "$work"
mkdir -p "$work"
cd "$work"
echo "archlinux.sh: downloading $url"
curl -fsSL --retry 5 --retry-delay 5 -o "$file" "$url"
curl -fsSL --retry 5 --retry-delay 5 -o "$file.sig" "$url.sig"
gpg --dearmor <"$key" >"$work/release-key.gpg"
gpgv --keyring "$work/release-key.gpg" "$file.sig" "$file" ||
  die "the signature of $file does not verify against the pinned key $key"
echo "archlinux.sh: signature of $file verified"
tar --numeric-owner -xpf "$file" -I zstd
rm -f "$file"
boot=$work/root.x86_64
[ -x "$boot/usr/bin/arch-chroot" ] || die "the bootstrap has no usr/bin/arch-chroot"

# pacstrap and arch-chroot want the root to be a mount point.
mount --bind "$boot" "$boot"
cleanup() {
  umount -R "$boot/mnt" 2>/dev/null || true
  umount -R "$boot" 2>/dev/null || true
}
trap cleanup EXIT

: >"$boot/etc/pacman.d/mirrorlist"
for m in $package_mirrors; do
  echo "Server = $m" >>"$boot/etc/pacman.d/mirrorlist"
done
mkdir -p "$boot/mnt"
# A slave, so that the exit trap's `umount -R` takes only these copies away: with the rescue
# system's shared propagation it would also unmount the target's own /efi, and cleanup.sh would
# then skip the ESP's trim.
mount --rbind "$target" "$boot/mnt"
mount --make-rslave "$boot/mnt"

in_bootstrap() { "$boot/usr/bin/arch-chroot" "$boot" "$@"; }

in_bootstrap pacman-key --init
in_bootstrap pacman-key --populate archlinux
read -r -a extra <<<"${EXTRA_PACKAGES:-}"
# shellcheck disable=SC2086
in_bootstrap pacstrap /mnt base linux mkinitcpio grub efibootmgr openssh sudo \
  e2fsprogs dosfstools gptfdisk qemu-guest-agent "${extra[@]}"

install -D -m 0644 "$files/archlinux/pacman-init.service" "$target/etc/systemd/system/pacman-init.service"
install -D -m 0644 "$files/common/50-root.conf" "$target/etc/repart.d/50-root.conf"
install -D -m 0644 "$files/common/10-hetzner.conf" "$target/etc/systemd/timesyncd.conf.d/10-hetzner.conf"

setup=/root/hcloud-setup
mkdir -p "$target$setup"
cp "$here/archlinux-configure.sh" "$here/bootloader.sh" "$target$setup/"
in_bootstrap arch-chroot /mnt env \
  LOCALE="${LOCALE:-C.UTF-8}" KEYMAP="${KEYMAP:-us}" TIMEZONE="${TIMEZONE:-UTC}" \
  SWAP_SIZE_MIB="${SWAP_SIZE_MIB:-0}" ROOT_LABEL="${ROOT_LABEL:-root}" DISK="$disk" \
  bash "$setup/archlinux-configure.sh"
rm -rf "${target:?}$setup"

# The agents, owned by pacman: the project's Arch packages install over them later.
TARGET_SEEN_AS=/ bash "$here/archlinux-agents.sh" "${AGENTS_TREE:-$hcloud/dist}" "$target" \
  "$boot/usr/bin/arch-chroot" "$boot" arch-chroot /mnt pacman

# Outside the chroot: arch-chroot bind-mounts resolv.conf while it runs.
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"
rm -rf "$target/etc/pacman.d/gnupg"
echo "archlinux.sh: Arch Linux installed on $target"
