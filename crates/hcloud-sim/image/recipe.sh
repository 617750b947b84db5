#!/usr/bin/env bash
# Recipe of the simulator's guest root filesystem: Debian bookworm with systemd, systemd-networkd,
# systemd-resolved, openssh-server and a kernel for direct kernel boot. The simulator caches the
# result under a key made from this file's hash, so any change here rebuilds the image.
#
# No network configuration is baked in: the only .network file a guest gets is the product's
# fallback (99-hcloud-fallback.network), installed with the agents. cloud-init is installed but
# disabled (/etc/cloud/cloud-init.disabled) so the same image serves the cloud-init peer runs.
#
# Usage: recipe.sh TARGET_DIR [MIRROR]   (as root; TARGET_DIR must not exist)
set -euo pipefail
target=$1
mirror=${2:-http://deb.debian.org/debian}
suite=bookworm
packages=(
  systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus
  openssh-server iproute2 iputils-ping procps kmod less
  linux-image-cloud-amd64 initramfs-tools
  cloud-init
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

cat > "$target/usr/sbin/policy-rc.d" <<'EOP'
#!/bin/sh
exit 101
EOP
chmod 0755 "$target/usr/sbin/policy-rc.d"

cat > "$target/etc/apt/sources.list" <<EOS
deb $mirror $suite main
deb $mirror $suite-updates main
EOS
# The disk is a bare ext4 filesystem on /dev/vda (no partition table); initramfs-tools only needs
# the virtio block driver and ext4, which MODULES=most includes.
chroot "$target" env DEBIAN_FRONTEND=noninteractive apt-get update -q
chroot "$target" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${packages[@]}"
chroot "$target" apt-get clean
rm -f "$target/usr/sbin/policy-rc.d"
rm -rf "$target/var/lib/apt/lists/"*

# Identity: nothing of the build host, nothing that a clone would share.
echo debian > "$target/etc/hostname"
cat > "$target/etc/hosts" <<'EOH'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
EOH
: > "$target/etc/machine-id"
rm -f "$target/var/lib/dbus/machine-id"
rm -f "$target"/etc/ssh/ssh_host_*
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "$target/etc/fstab"

# sshd host keys are generated on the first boot of each disk.
cat > "$target/etc/systemd/system/ssh-host-keys.service" <<'EOU'
[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
EOU

# cloud-init stays off unless a peer run removes this file.
mkdir -p "$target/etc/cloud"
touch "$target/etc/cloud/cloud-init.disabled"

chroot "$target" systemctl enable systemd-networkd.service systemd-resolved.service \
  ssh.service ssh-host-keys.service serial-getty@ttyS0.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"

# Root has no password; logins are by the SSH keys the metadata serves.
chroot "$target" passwd -l root >/dev/null

ls "$target"/boot/vmlinuz-* "$target"/boot/initrd.img-* >/dev/null
