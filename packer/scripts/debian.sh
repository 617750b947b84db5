#!/usr/bin/env bash
# Install Debian onto the disk that disk.sh mounted at TARGET, from Hetzner's rescue system:
#   1. debootstrap (installed in the rescue system if missing) --variant=minbase of
#      DEBIAN_RELEASE from DEBIAN_MIRROR with the packages of files/debian/packages.txt, the
#      Release file's signature checked against DEBIAN_KEYRING (--force-check-gpg: an unsigned
#      or unverifiable mirror stops the build)
#   2. configuration in the target's chroot, with proc, sys, dev and run mounted fresh for it
#      (no recursive binds of the rescue system's mounts) and a policy-rc.d so that nothing is
#      started: fstab by label, systemd-repart growing the root, systemd-networkd and resolved
#      (the agents render the network; their fallback .network keeps the server reachable),
#      apt sources, time zone, locale, SSH with host keys made at first boot, a getty on the
#      serial console, root's password locked, the initramfs, and GRUB for BIOS and UEFI
#      (bootloader.sh)
# No cloud-init: the agents do its work.
#
# Usage: debian.sh TARGET DISK
# Environment:
#   DEBIAN_RELEASE          codename to install (trixie)
#   DEBIAN_MIRROR           mirror debootstrap installs from (http://deb.debian.org/debian)
#   DEBIAN_APT_MIRROR       mirror the image's apt sources name (default: DEBIAN_MIRROR)
#   DEBIAN_SECURITY_MIRROR  security mirror for the image's apt sources
#                           (http://deb.debian.org/debian-security; empty: none)
#   DEBIAN_KEYRING          keyring the Release signature is checked against
#                           (/usr/share/keyrings/debian-archive-keyring.gpg)
#   DEBIAN_KEYRING_BASE64   instead, an ASCII-armored public key in base64 (the template's
#                           debian-keyring), for a mirror signed with its own key
#   EXTRA_PACKAGES          more packages (space-separated), installed by debootstrap too
#   LOCALE (C.UTF-8), TIMEZONE (UTC), SWAP_SIZE_MIB (0), ROOT_LABEL (debian),
#   ARCH (x86_64|aarch64, default: uname -m)
set -euo pipefail

die() { echo "debian.sh: $*" >&2; exit 1; }
[ "$#" -eq 2 ] || die "usage: $0 TARGET DISK"
target=${1%/}
disk=$2
here=$(cd "$(dirname "$0")" && pwd)
files=$(dirname "$here")/files
release=${DEBIAN_RELEASE:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mirror=${mirror%/}
apt_mirror=${DEBIAN_APT_MIRROR:-$mirror}
apt_mirror=${apt_mirror%/}
security_mirror=${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}
security_mirror=${security_mirror%/}
keyring=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
if [ -n "${DEBIAN_KEYRING_BASE64:-}" ]; then
  [ -z "${DEBIAN_KEYRING:-}" ] || die "set DEBIAN_KEYRING or DEBIAN_KEYRING_BASE64, not both"
  command -v gpg >/dev/null || die "gpg is missing (package gnupg): it reads DEBIAN_KEYRING_BASE64"
  keyring=$(mktemp /tmp/debian-keyring.XXXXXX.gpg)
  printf '%s' "$DEBIAN_KEYRING_BASE64" | base64 -d 2>/dev/null | gpg --dearmor >"$keyring" 2>/dev/null ||
    die "DEBIAN_KEYRING_BASE64 is not an ASCII-armored public key in base64"
  [ -s "$keyring" ] || die "DEBIAN_KEYRING_BASE64 holds no key"
fi
locale=${LOCALE:-C.UTF-8}
timezone=${TIMEZONE:-UTC}
swap=${SWAP_SIZE_MIB:-0}
label=${ROOT_LABEL:-debian}
arch=${ARCH:-$(uname -m)}
list=$files/debian/packages.txt
hostkeys_unit=$files/debian/ssh-host-keys.service

# --- what was asked for, checked before anything is downloaded -------------------------------
[[ $release =~ ^[a-z]+$ ]] || die "DEBIAN_RELEASE must be a codename such as trixie, got '$release'"
for m in "$mirror" "$apt_mirror"; do
  [[ $m =~ ^https?://[^[:space:]]+$ ]] || die "the mirror '$m' is not an http(s) URL"
done
[ -z "$security_mirror" ] || [[ $security_mirror =~ ^https?://[^[:space:]]+$ ]] ||
  die "DEBIAN_SECURITY_MIRROR '$security_mirror' is not an http(s) URL (or empty for none)"
[[ $locale =~ ^[A-Za-z_]+([.][A-Za-z0-9-]+)?(@[a-z]+)?$ ]] || die "LOCALE '$locale' does not look like en_US.UTF-8 or C.UTF-8"
[[ $timezone =~ ^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$ ]] || die "TIMEZONE '$timezone' is not a tz database name"
case "$swap" in '' | *[!0-9]*) die "SWAP_SIZE_MIB must be a number of MiB, got '$swap'" ;; esac
case "$arch" in
  x86_64) deb_arch=amd64 console=ttyS0 ;;
  aarch64) deb_arch=arm64 console=ttyAMA0 ;;
  *) die "unsupported architecture $arch (x86_64 or aarch64)" ;;
esac
[ -f "$list" ] || die "the package list $list is missing"

# The package list: packages.txt is written for x86_64; on aarch64 the kernel and GRUB for
# arm64 take the place of the amd64 ones, and there is no legacy BIOS GRUB.
packages=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  line=${line%%#*}
  read -r -a words <<<"$line"
  [ "${#words[@]}" -eq 0 ] && continue
  [ "${#words[@]}" -eq 1 ] || die "$list line $n: one package per line, got '$line'"
  p=${words[0]}
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "$list line $n: '$p' is not a Debian package name"
  if [ "$arch" = aarch64 ]; then
    case "$p" in
      linux-image-cloud-amd64) p=linux-image-cloud-arm64 ;;
      grub-efi-amd64-bin) p=grub-efi-arm64-bin ;;
      grub-pc-bin) continue ;;
    esac
  fi
  packages+=("$p")
done <"$list"
[ "${#packages[@]}" -gt 0 ] || die "$list lists no packages"
read -r -a extra <<<"${EXTRA_PACKAGES:-}"
for p in "${extra[@]}"; do
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "EXTRA_PACKAGES: '$p' is not a Debian package name"
  packages+=("$p")
done
# Locales other than C.UTF-8 (built into glibc) are generated, which needs the locales package.
[ "$locale" = C.UTF-8 ] || packages+=(locales)

# --- the build server ----------------------------------------------------------------------
[ "$arch" = "$(uname -m)" ] || die "ARCH=$arch but the build server is $(uname -m)"
mountpoint -q "$target" || die "$target is not mounted (run disk.sh first)"
mountpoint -q "$target/efi" || die "$target/efi is not mounted (run disk.sh first)"
[ -b "$disk" ] || die "$disk is not a block device"
[ -f "$hostkeys_unit" ] || die "$hostkeys_unit is missing"
[ -f "$files/common/50-root.conf" ] || die "$files/common/50-root.conf is missing"
leftovers=$(find "$target" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name efi -print -quit)
[ -z "$leftovers" ] || die "$target is not empty ($leftovers): run disk.sh first, it makes a fresh file system"
if [ -n "${DEBIAN_KEYRING:-}" ] && [ ! -f "$keyring" ]; then
  die "the keyring DEBIAN_KEYRING=$keyring is missing"
fi

# --- 1. debootstrap ------------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v gpgv >/dev/null || missing+=(gpgv)
if [ ! -f "$keyring" ] && [ -z "${DEBIAN_KEYRING:-}" ]; then missing+=(debian-archive-keyring); fi
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "${missing[*]} missing and no apt-get to install them with"
  echo "debian.sh: installing ${missing[*]} in the rescue system"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
[ -f "$keyring" ] || die "the keyring $keyring (DEBIAN_KEYRING) is missing: install debian-archive-keyring or point DEBIAN_KEYRING at a keyring with Debian's archive keys"
# A debootstrap older than the release knows no script for it; Debian's releases all use sid's.
script=/usr/share/debootstrap/scripts/$release
if [ ! -e "$script" ]; then
  script=/usr/share/debootstrap/scripts/sid
  [ -e "$script" ] || die "debootstrap has neither a script for $release nor sid's (is it Debian's debootstrap?)"
  echo "debian.sh: debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?') has no script for $release; using sid's"
fi

include=$(IFS=,; echo "${packages[*]}")
echo "debian.sh: debootstrap $release ($deb_arch) from $mirror, Release checked against $keyring"
echo "debian.sh: packages: ${packages[*]}"
# Two stages, so that dpkg in the second one skips its fsync of every file it unpacks
# (force-unsafe-io, as Debian's own image builders do): the disk is synced when it is unmounted,
# and a build that dies half-way is thrown away anyway. The setting is removed again below.
dpkg_unsafe=$target/etc/dpkg/dpkg.cfg.d/zz-hcloud-build-unsafe-io
debootstrap_failed() {
  log=$target/debootstrap/debootstrap.log
  [ -f "$log" ] && tail -n 30 "$log" >&2
  die "debootstrap ($1) of $release from $mirror failed (the lines above say why; the Release signature is checked against $keyring)"
}
debootstrap --foreign --variant=minbase --arch="$deb_arch" --components=main \
  --keyring="$keyring" --force-check-gpg --include="$include" \
  "$release" "$target" "$mirror" "$script" || debootstrap_failed "download and unpack"
mkdir -p "$(dirname "$dpkg_unsafe")"
echo force-unsafe-io >"$dpkg_unsafe"
chroot "$target" /debootstrap/debootstrap --second-stage || debootstrap_failed "second stage"
compgen -G "$target/boot/vmlinuz-*" >/dev/null || die "debootstrap installed no kernel in $target/boot"

# --- 2. configuration in the chroot --------------------------------------------------------
# Fresh mounts, not binds of the rescue system's: nothing under TARGET then propagates back to
# the rescue system's own mounts, and unmounting them takes nothing else with it.
mounts=()
made_disk_dir=
cleanup() {
  rm -f "$target/usr/sbin/policy-rc.d"
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    # The /dev/disk made below on the devtmpfs (shared with the rescue system's /dev).
    if [ "${mounts[i]}" = "$target/dev/disk" ] && [ -n "$made_disk_dir" ]; then
      rmdir "$target/dev/disk" 2>/dev/null || true
    fi
  done
  mounts=()
}
trap cleanup EXIT
chroot_mount() { # TYPE OPTIONS DIR
  mkdir -p "$target$3"
  mount -t "$1" -o "$2" "$1" "$target$3" || die "mounting $1 on $target$3 for the chroot failed"
  mounts+=("$target$3")
}
chroot_mount proc nosuid,nodev,noexec /proc
chroot_mount sysfs nosuid,nodev,noexec,ro /sys
chroot_mount devtmpfs mode=0755,nosuid /dev
chroot_mount devpts mode=0620,gid=5,nosuid,noexec /dev/pts
chroot_mount tmpfs mode=1777,nosuid,nodev /dev/shm
chroot_mount tmpfs mode=0755,nosuid,nodev /run

# Nothing installed or reconfigured here may start a service (invoke-rc.d asks this first).
printf '#!/bin/sh\n# debian.sh: no service starts while the image is built.\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
chmod 0755 "$target/usr/sbin/policy-rc.d"

in_target() { LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$target" "$@"; }

# File systems by label: the same in every server made from the snapshot. The root file system
# grows with its partition at boot (systemd-repart, then systemd-growfs).
cat >"$target/etc/fstab" <<FSTAB
LABEL=$label  /     ext4  rw,relatime,x-systemd.growfs  0 1
LABEL=ESP     /efi  vfat  rw,relatime,fmask=0077,dmask=0077  0 2
FSTAB
if [ "$swap" -gt 0 ]; then
  fallocate -l "${swap}M" "$target/swapfile"
  chmod 0600 "$target/swapfile"
  mkswap -q "$target/swapfile"
  echo "/swapfile  none  swap  defaults  0 0" >>"$target/etc/fstab"
fi
install -D -m 0644 "$files/common/50-root.conf" "$target/etc/repart.d/50-root.conf"
install -D -m 0644 "$files/common/10-hetzner.conf" "$target/etc/systemd/timesyncd.conf.d/10-hetzner.conf"

# The image's apt sources (deb822), and no trace of the build mirror's indices.
rm -f "$target/etc/apt/sources.list"
case "$release" in
  sid | unstable) suites=$release ;;
  *) suites="$release $release-updates" ;;
esac
{
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$apt_mirror" "$suites"
  if [ -n "$security_mirror" ] && [ "$suites" != "$release" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$security_mirror" "$release"
  fi
} >"$target/etc/apt/sources.list.d/debian.sources"
[ -f "$target/usr/share/keyrings/debian-archive-keyring.gpg" ] ||
  die "the target has no /usr/share/keyrings/debian-archive-keyring.gpg for its apt sources (is debian-archive-keyring in $list?)"

# Time zone and locale.
[ -f "$target/usr/share/zoneinfo/$timezone" ] || die "unknown time zone '$timezone' (no /usr/share/zoneinfo/$timezone in the target)"
ln -sfn "/usr/share/zoneinfo/$timezone" "$target/etc/localtime"
echo "$timezone" >"$target/etc/timezone"
if [ "$locale" != C.UTF-8 ]; then
  grep -Eq "^#? *${locale//./\\.} " "$target/etc/locale.gen" || die "locale '$locale' is not in the target's /etc/locale.gen"
  sed -i -E "s/^# *(${locale//./\\.} )/\\1/" "$target/etc/locale.gen"
  in_target locale-gen
fi
echo "LANG=$locale" >"$target/etc/default/locale"
[ -L "$target/etc/locale.conf" ] || echo "LANG=$locale" >"$target/etc/locale.conf"

# The hostname comes from the agents (hcloud-hostname); not the rescue system's, which
# debootstrap copied. /etc/hosts gets the server's name in its managed block.
rm -f "$target/etc/hostname"
cat >"$target/etc/hosts" <<'HOSTS'
127.0.0.1  localhost
::1        localhost ip6-localhost ip6-loopback
ff02::1    ip6-allnodes
ff02::2    ip6-allrouters
HOSTS

# SSH: Debian makes host keys only when openssh-server is installed, and cleanup.sh removes the
# build server's; each server makes its own before sshd first starts.
install -D -m 0644 "$hostkeys_unit" "$target/etc/systemd/system/ssh-host-keys.service"
# Root logs in with the SSH keys from the metadata; no password until one is set (Hetzner's
# password reset sets one through the guest agent).
in_target passwd --lock root >/dev/null
in_target systemctl enable systemd-networkd.service systemd-resolved.service \
  systemd-timesyncd.service ssh.service ssh-host-keys.service "serial-getty@$console.service"

# The initramfs carries every module (initramfs-tools' MODULES=most): the image boots on every
# server type, not only on the one it was built on.
grep -Eq '^MODULES=most' "$target/etc/initramfs-tools/initramfs.conf" ||
  die "the target's initramfs-tools is not set to MODULES=most"
in_target update-initramfs -u -k all

# GRUB: short timeout; the kernel console on the screen and on the serial port (the last one,
# /dev/console, gets systemd's messages). systemd-imds (Debian: the systemd-imds package, newer
# than 13) hands its jobs to the agents: no credential import, no early network of its own.
mkdir -p "$target/etc/default/grub.d"
cmdline="console=tty0 console=$console,115200 systemd.imds.import=0 systemd.imds.network=off"
{
  echo '# Written by debian.sh (packer/debian.pkr.hcl); drop-ins go to /etc/default/grub.d/.'
  echo 'GRUB_DEFAULT=0'
  echo 'GRUB_TIMEOUT=1'
  echo 'GRUB_DISTRIBUTOR=Debian'
  echo 'GRUB_CMDLINE_LINUX_DEFAULT=""'
  echo "GRUB_CMDLINE_LINUX=\"$cmdline\""
  if [ "$arch" = x86_64 ]; then
    echo 'GRUB_TERMINAL="serial console"'
    echo 'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"'
  fi
  echo 'GRUB_DISABLE_OS_PROBER=true'
} >"$target/etc/default/grub"
# grub-mkconfig names the root file system by UUID (the same on every server made from the
# snapshot) only if /dev/disk/by-uuid has it; without udev in the build environment it would
# name the build's device (root=/dev/sda3, /dev/loop0p3) instead. Then the link udev would make
# is made on a tmpfs for the chroot alone.
root_dev=$(findmnt -no SOURCE "$target")
uuid=$(blkid -o value -s UUID "$root_dev" || true)
[ -n "$uuid" ] || die "the root file system $root_dev has no UUID"
if [ ! -e "$target/dev/disk/by-uuid/$uuid" ]; then
  [ -d "$target/dev/disk" ] || { mkdir "$target/dev/disk"; made_disk_dir=1; }
  chroot_mount tmpfs mode=0755 /dev/disk
  mkdir "$target/dev/disk/by-uuid"
  ln -s "$root_dev" "$target/dev/disk/by-uuid/$uuid"
fi
setup=/root/hcloud-setup
mkdir -p "$target$setup"
cp "$here/bootloader.sh" "$target$setup/"
in_target env ARCH="$arch" bash "$setup/bootloader.sh" "$disk"
rm -rf "${target:?}$setup"
grep -q "console=$console" "$target/boot/grub/grub.cfg" || die "grub.cfg does not boot with the serial console"
grep -q "root=UUID=$uuid " "$target/boot/grub/grub.cfg" || die "grub.cfg does not name the root file system by its UUID $uuid"

# Package caches and the build mirror's indices: apt update on the server fetches the image's.
# dpkg on the server syncs what it writes again.
in_target apt-get clean
rm -f "$dpkg_unsafe"
rm -rf "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/*.bin "$target/debootstrap"
rm -f "$target"/var/log/apt/* "$target/var/log/dpkg.log" "$target/var/log/alternatives.log" "$target/var/log/bootstrap.log"

trap - EXIT
cleanup
# After the chroot's /run is gone: the resolver is systemd-resolved's stub.
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"
[ -z "${DEBIAN_KEYRING_BASE64:-}" ] || rm -f "$keyring"
echo "debian.sh: Debian $release ($deb_arch) installed on $target"
