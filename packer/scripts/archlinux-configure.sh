#!/usr/bin/env bash
# Configure a freshly pacstrapped Arch Linux. Runs inside the target's chroot (archlinux.sh).
# Environment: LOCALE, KEYMAP, TIMEZONE, SWAP_SIZE_MIB, ROOT_LABEL, DISK
set -euo pipefail

die() { echo "archlinux-configure.sh: $*" >&2; exit 1; }
locale=${LOCALE:-C.UTF-8}
keymap=${KEYMAP:-us}
timezone=${TIMEZONE:-UTC}
swap=${SWAP_SIZE_MIB:-0}
label=${ROOT_LABEL:-root}
disk=${DISK:?DISK is not set}
here=$(cd "$(dirname "$0")" && pwd)

# Locale: C.UTF-8 is built into glibc; others are generated.
if [ "$locale" != C.UTF-8 ]; then
  grep -Eq "^#? *${locale//./\\.} " /etc/locale.gen || die "locale '$locale' is not in /etc/locale.gen"
  sed -i -E "s/^# *(${locale//./\\.} )/\\1/" /etc/locale.gen
  locale-gen
fi
echo "LANG=$locale" >/etc/locale.conf

[ -n "$(find /usr/share/kbd/keymaps -name "$keymap.map.gz" -print -quit)" ] || die "unknown keymap '$keymap'"
echo "KEYMAP=$keymap" >/etc/vconsole.conf

[ -f "/usr/share/zoneinfo/$timezone" ] || die "unknown time zone '$timezone'"
ln -sfn "/usr/share/zoneinfo/$timezone" /etc/localtime

# File systems by label: the same in every server made from the snapshot. The root file system
# grows with its partition at boot (systemd-repart, then systemd-growfs).
cat >/etc/fstab <<FSTAB
LABEL=$label  /     ext4  rw,relatime,x-systemd.growfs  0 1
LABEL=ESP     /efi  vfat  rw,relatime,fmask=0077,dmask=0077  0 2
FSTAB
case "$swap" in '' | *[!0-9]*) die "SWAP_SIZE_MIB must be a number, got '$swap'" ;; esac
if [ "$swap" -gt 0 ]; then
  fallocate -l "${swap}M" /swapfile
  chmod 0600 /swapfile
  mkswap /swapfile >/dev/null
  echo "/swapfile  none  swap  defaults  0 0" >>/etc/fstab
fi

# An initramfs with every module (no autodetect hook, also for later kernel updates): the image
# boots on every server type, not only on the one it was built on.
sed -i -E '/^HOOKS=/ s/ autodetect//' /etc/mkinitcpio.conf
grep -Eq '^HOOKS=.*autodetect' /etc/mkinitcpio.conf && die "could not remove the autodetect hook"
mkinitcpio -P

# GRUB: short timeout; the kernel console on the serial port and on the (last, primary) screen.
# systemd-imds (in Arch's systemd package) hands its jobs to the agents: no credential import (a
# key it imports would land outside the managed block and outlive its removal in Hetzner), no
# early network of its own; its Varlink API stays (docs/install.md, systemd-imds).
sed -i -E \
  -e 's/^#?GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
  -e 's/^#?GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="loglevel=3 console=ttyS0,115200 console=tty0 systemd.imds.import=0 systemd.imds.network=off"/' \
  /etc/default/grub
bash "$here/bootloader.sh" "$disk"

# Root logs in with the SSH keys from the metadata; no password until one is set
# (Hetzner's password reset sets one through the guest agent).
passwd --lock root >/dev/null

systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  sshd.service pacman-init.service
echo "archlinux-configure.sh: configured ($locale, $keymap, $timezone, swap ${swap} MiB)"
