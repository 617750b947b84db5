#!/usr/bin/env bash
# Recipe of the simulator's guest root filesystems: Debian with systemd, systemd-networkd,
# systemd-resolved, openssh-server and a kernel for direct kernel boot. Two releases:
#   bookworm  systemd 252, the oldest systemd the agents support;
#   sid       current systemd (262 in late 2026) with systemd-imds, the IMDS client that Arch's
#             systemd package ships: it stands for Arch and current NixOS.
# The simulator caches each result under a key made from this file's hash and the release, so any
# change here rebuilds the images.
#
# No network configuration is baked in: the only .network file a guest gets is the product's
# fallback (99-hcloud-fallback.network), installed with the agents. cloud-init is installed but
# disabled (/etc/cloud/cloud-init.disabled) so the same image serves the cloud-init peer runs.
#
# Usage: recipe.sh TARGET_DIR SUITE [MIRROR]   (as root; TARGET_DIR must not exist)
set -euo pipefail
target=$1
suite=$2
mirror=${3:-http://deb.debian.org/debian}
packages=(
  systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus
  openssh-server iproute2 iputils-ping procps kmod less
  linux-image-cloud-amd64 initramfs-tools
)
case $suite in
  bookworm) packages+=(cloud-init) ;;
  # As on Arch, where the systemd package carries the IMDS generator, daemon and units.
  sid) packages+=(systemd-imds) ;;
  *) echo "recipe.sh: unknown suite $suite (bookworm or sid)" >&2; exit 2 ;;
esac

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

if [ "$suite" = sid ]; then
  echo "deb $mirror $suite main" > "$target/etc/apt/sources.list"
else
  cat > "$target/etc/apt/sources.list" <<EOS
deb $mirror $suite main
deb $mirror $suite-updates main
EOS
fi
# A mirror (or a snapshot of one) can serve a Release file past its Valid-Until date, as sid's
# often is: accept it for the build only.
echo 'Acquire::Check-Valid-Until "false";' > "$target/etc/apt/apt.conf.d/99hcloud-sim-build"
# The disk is a bare ext4 filesystem on /dev/vda (no partition table); initramfs-tools only needs
# the virtio block driver and ext4, which MODULES=most includes.
chroot "$target" env DEBIAN_FRONTEND=noninteractive apt-get update -q
chroot "$target" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${packages[@]}"
chroot "$target" apt-get clean
rm -f "$target/usr/sbin/policy-rc.d"
rm -f "$target/etc/apt/apt.conf.d/99hcloud-sim-build"
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

# cloud-init (bookworm only) stays off unless a peer run removes this file.
mkdir -p "$target/etc/cloud"
touch "$target/etc/cloud/cloud-init.disabled"

chroot "$target" systemctl enable systemd-networkd.service systemd-resolved.service \
  ssh.service ssh-host-keys.service serial-getty@ttyS0.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"

# Root has no password; logins are by the SSH keys the metadata serves.
chroot "$target" passwd -l root >/dev/null

ls "$target"/boot/vmlinuz-* "$target"/boot/initrd.img-* >/dev/null
