#!/usr/bin/env bash
# Partition, format and mount the target disk so it boots on every Hetzner server type:
#   1  1 MiB   BIOS boot partition (EF02): GRUB's core image for legacy BIOS
#   2  ESP     EFI system partition (EF00, FAT32, label ESP): GRUB for UEFI (CAX is UEFI only)
#   3  root    the rest of the disk, typed as the architecture's root partition (x86-64: 8304,
#              arm64: 8305) so systemd-repart finds and grows it at boot; ext4 with a label
# Then mounts the root file system at MOUNTPOINT and the ESP at MOUNTPOINT/efi.
#
# Usage: disk.sh DISK MOUNTPOINT
# Environment: ROOT_LABEL (root), ESP_SIZE_MIB (256), ARCH (x86_64|aarch64, default: uname -m)
set -euo pipefail

usage() { echo "usage: $0 DISK MOUNTPOINT" >&2; exit 2; }
[ "$#" -eq 2 ] || usage
disk=$1
mnt=$2
root_label=${ROOT_LABEL:-root}
esp_size=${ESP_SIZE_MIB:-256}
arch=${ARCH:-$(uname -m)}

die() { echo "disk.sh: $*" >&2; exit 1; }

[ -b "$disk" ] || die "$disk is not a block device"
case "$arch" in
  x86_64) root_type=8304 ;;
  aarch64) root_type=8305 ;;
  *) die "unsupported architecture $arch (x86_64 or aarch64)" ;;
esac
case "$esp_size" in '' | *[!0-9]*) die "ESP_SIZE_MIB must be a number of MiB, got '$esp_size'" ;; esac
[ "${#root_label}" -le 16 ] || die "ROOT_LABEL '$root_label' is longer than ext4's 16 characters"
if ! command -v sgdisk >/dev/null || ! command -v mkfs.fat >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "disk.sh: installing gdisk and dosfstools in the rescue system"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gdisk dosfstools
  fi
fi
for tool in sgdisk wipefs mkfs.fat mkfs.ext4 partx; do
  command -v "$tool" >/dev/null || die "$tool is missing (packages: gdisk dosfstools e2fsprogs util-linux)"
done

# Partition device names: /dev/sda1, but /dev/loop0p1 and /dev/nvme0n1p1.
part() {
  case "$disk" in
    *[0-9]) echo "${disk}p$1" ;;
    *) echo "${disk}$1" ;;
  esac
}

# Nothing of the disk may be in use (a previous attempt's mounts).
if findmnt -rno TARGET "$mnt" >/dev/null 2>&1; then
  umount -R "$mnt"
fi

echo "disk.sh: partitioning $disk (BIOS boot, ESP ${esp_size} MiB, root $root_type '$root_label')"
wipefs --all --force "$disk" >/dev/null
sgdisk --zap-all "$disk" >/dev/null
sgdisk --clear --set-alignment=2048 \
  --new=1:0:+1M --typecode=1:EF02 --change-name=1:bios-boot \
  --new=2:0:+"${esp_size}"M --typecode=2:EF00 --change-name=2:esp \
  --new=3:0:0 --typecode=3:"$root_type" --change-name=3:root \
  "$disk" >/dev/null

# Let the kernel (and udev, where it runs) see the new partitions.
partx --update "$disk" 2>/dev/null || partx --add "$disk" 2>/dev/null || true
if command -v udevadm >/dev/null; then udevadm settle 2>/dev/null || true; fi
for n in 1 2 3; do
  for _ in $(seq 50); do [ -b "$(part "$n")" ] && break; sleep 0.1; done
  [ -b "$(part "$n")" ] || die "partition $(part "$n") did not appear"
done

wipefs --all --force "$(part 2)" "$(part 3)" >/dev/null
mkfs.fat -F 32 -n ESP "$(part 2)" >/dev/null
mkfs.ext4 -q -F -L "$root_label" "$(part 3)"

mkdir -p "$mnt"
mount "$(part 3)" "$mnt"
mkdir -p "$mnt/efi"
if ! mount -t vfat -o fmask=0077,dmask=0077 "$(part 2)" "$mnt/efi"; then
  # A kernel without FAT support (some containers): FUSE, if fusefat is there.
  grep -qw vfat /proc/filesystems && die "mounting the ESP $(part 2) failed"
  command -v fusefat >/dev/null || die "the kernel cannot mount FAT and fusefat is missing"
  echo "disk.sh: the kernel has no FAT support; mounting the ESP with fusefat"
  fusefat -o rw+,fsname="$(part 2)" "$(part 2)" "$mnt/efi" >/dev/null 2>&1 || die "fusefat could not mount the ESP $(part 2)"
fi
echo "disk.sh: $(part 3) mounted on $mnt, ESP $(part 2) on $mnt/efi"
