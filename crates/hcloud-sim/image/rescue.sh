#!/usr/bin/env bash
# Recipe of the simulated rescue system: what Hetzner's rescue offers and our provisioning
# scripts use, on Debian trixie (debootstrap). A server booted into it (enable_rescue, then a
# reset) sees its own disk as /dev/sda, gets its public IPv4 by DHCP, and root logs in with the
# keys given to enable_rescue, which QEMU hands in through fw_cfg (opt/hcloud/rescue-keys).
#
# The simulator caches the result under a key made from this file's hash, makes an ext4 image of
# it and boots it with its kernel and initrd; every boot starts from the same image (the writes
# of a rescue session are dropped at power-off, as Hetzner's rescue runs from memory).
#
# Usage: rescue.sh TARGET_DIR [MIRROR]   (as root; TARGET_DIR must not exist)
set -euo pipefail
target=$1
mirror=${2:-http://deb.debian.org/debian}
suite=trixie
packages=(
  systemd systemd-sysv systemd-resolved udev dbus kmod procps iproute2 iputils-ping less
  openssh-server linux-image-cloud-amd64 initramfs-tools
  # Disks and file systems.
  gdisk parted fdisk dosfstools e2fsprogs util-linux
  # Downloads and their signatures.
  curl wget ca-certificates gnupg gpgv debian-archive-keyring
  zstd xz-utils rsync jq
  # Installing systems.
  debootstrap grub2-common grub-pc-bin grub-efi-amd64-bin
)

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

debootstrap --variant=minbase --include=ca-certificates "$suite" "$target" "$mirror"
for fs in proc sys dev; do
  mount --bind "/$fs" "$target/$fs"
  mounted+=("$target/$fs")
done
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod 0755 "$target/usr/sbin/policy-rc.d"
echo "deb $mirror $suite main" > "$target/etc/apt/sources.list"
chroot "$target" env DEBIAN_FRONTEND=noninteractive apt-get update -q
chroot "$target" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${packages[@]}"
chroot "$target" apt-get clean
rm -f "$target/usr/sbin/policy-rc.d"
rm -rf "$target/var/lib/apt/lists/"*

echo rescue > "$target/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trescue\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$target/etc/hosts"
: > "$target/etc/machine-id"
echo '/dev/vda / ext4 defaults 0 1' > "$target/etc/fstab"

# DHCP on every ethernet NIC, as the rescue system does on Hetzner.
mkdir -p "$target/etc/systemd/network"
cat > "$target/etc/systemd/network/50-rescue.network" <<'EON'
[Match]
Type=ether

[Network]
DHCP=ipv4
IPv6AcceptRA=no
EON

# Root's keys are the ones given to enable_rescue, handed in by QEMU's fw_cfg.
cat > "$target/etc/systemd/system/rescue-keys.service" <<'EOU'
[Unit]
Description=Root's SSH keys of this rescue boot (fw_cfg opt/hcloud/rescue-keys)
Before=ssh.service

[Service]
Type=oneshot
ExecStartPre=/usr/sbin/modprobe qemu_fw_cfg
ExecStart=/usr/bin/install -D -m 0600 /sys/firmware/qemu_fw_cfg/by_name/opt/hcloud/rescue-keys/raw /root/.ssh/authorized_keys

[Install]
WantedBy=ssh.service
EOU

chroot "$target" systemctl enable systemd-networkd.service systemd-resolved.service \
  ssh.service rescue-keys.service serial-getty@ttyS0.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"
chroot "$target" passwd -l root >/dev/null
# The SSH host keys are made once, by the simulator on the host (not under emulation).
rm -f "$target"/etc/ssh/ssh_host_*
ls "$target"/boot/vmlinuz-* "$target"/boot/initrd.img-* >/dev/null
