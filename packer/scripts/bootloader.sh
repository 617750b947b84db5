#!/usr/bin/env bash
# Install GRUB for both firmware modes on a disk laid out by disk.sh:
#   x86_64:  i386-pc into the BIOS boot partition (legacy BIOS) and x86_64-efi on the ESP
#   aarch64: arm64-efi on the ESP (CAX servers boot UEFI only)
# The EFI image goes to the removable path (EFI/BOOT/BOOTX64.EFI, BOOTAA64.EFI), which firmware
# boots without NVRAM entries: a snapshot carries no boot entries to the servers made from it.
#
# Usage: bootloader.sh [--root DIR] [--no-config] DISK
#   --root DIR    the target's root (default /, i.e. run inside the target's chroot); GRUB files
#                 go to DIR/boot, the ESP is DIR/efi
#   --no-config   do not run grub-mkconfig (the caller writes grub.cfg)
# Environment: ARCH (x86_64|aarch64, default: uname -m)
set -euo pipefail

die() { echo "bootloader.sh: $*" >&2; exit 1; }

root=/
config=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --root) [ "$#" -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --no-config) config=0; shift ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ "$#" -eq 1 ] || die "usage: $0 [--root DIR] [--no-config] DISK"
disk=$1
arch=${ARCH:-$(uname -m)}
root=${root%/}
boot="$root/boot"
esp="$root/efi"

[ -b "$disk" ] || die "$disk is not a block device"
mountpoint -q "$esp" || die "$esp is not a mount point (mount the ESP there first)"
command -v grub-install >/dev/null || die "grub-install is missing"
mkdir -p "$boot"

case "$arch" in
  x86_64)
    echo "bootloader.sh: GRUB for BIOS (i386-pc) on $disk"
    grub-install --target=i386-pc --boot-directory="$boot" "$disk"
    echo "bootloader.sh: GRUB for UEFI (x86_64-efi) on $esp"
    grub-install --target=x86_64-efi --efi-directory="$esp" --boot-directory="$boot" \
      --removable --no-nvram
    ;;
  aarch64)
    echo "bootloader.sh: GRUB for UEFI (arm64-efi) on $esp"
    grub-install --target=arm64-efi --efi-directory="$esp" --boot-directory="$boot" \
      --removable --no-nvram
    ;;
  *) die "unsupported architecture $arch" ;;
esac

if [ "$config" -eq 1 ]; then
  [ "$root" = "" ] || die "grub-mkconfig runs inside the target only (use --no-config with --root)"
  grub-mkconfig -o /boot/grub/grub.cfg
fi
