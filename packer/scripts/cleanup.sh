#!/usr/bin/env bash
# Snapshot hygiene: remove everything that must not be shared by every server made from the
# snapshot, then trim the free space so the snapshot stays small.
#   - /etc/machine-id emptied (systemd makes a new one and treats the boot as the first)
#   - SSH host keys (each server generates its own at first boot)
#   - DHCP leases, random seed, systemd credential secret, shell history
#   - the agents' documents of the build server
#   - package caches, logs, temporary files
#
# Usage: cleanup.sh [--no-trim] ROOT
set -euo pipefail

die() { echo "cleanup.sh: $*" >&2; exit 1; }
trim=1
if [ "${1:-}" = "--no-trim" ]; then trim=0; shift; fi
[ "$#" -eq 1 ] || die "usage: $0 [--no-trim] ROOT"
root=${1%/}
[ -d "$root/etc" ] || die "$root does not look like a root file system (no etc/)"

# An empty machine-id (not a missing one): systemd fills it at boot and runs first-boot units.
if [ -e "$root/etc/machine-id" ] || [ -L "$root/etc/machine-id" ]; then
  rm -f "$root/etc/machine-id"
fi
: >"$root/etc/machine-id"
chmod 0444 "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

rm -f "$root"/etc/ssh/ssh_host_*
rm -f "$root/var/lib/systemd/random-seed" "$root/var/lib/systemd/credential.secret"
rm -rf "$root"/var/lib/dhcpcd/* "$root"/var/lib/dhclient/* "$root"/var/lib/NetworkManager/*.lease
rm -rf "$root"/var/lib/systemd/network/*
# The agents' documents, should they have run on the build server (its instance, its keys, its
# user data); the links to them in /etc stay, and a server made from the snapshot fetches its own.
rm -f "$root"/var/lib/hcloud-dl-metadata/* "$root"/var/lib/hcloud-dl-userdata/*
rm -f "$root"/root/.bash_history "$root"/root/.lesshst "$root"/root/.viminfo "$root"/root/.python_history
rm -f "$root"/home/*/.bash_history
rm -rf "$root"/var/cache/pacman/pkg/*
rm -rf "$root"/var/log/journal/* "$root"/var/log/pacman.log "$root"/var/log/*.log "$root"/var/log/*.old
rm -rf "${root:?}"/tmp/* "$root"/var/tmp/*

if [ "$trim" -eq 1 ]; then
  sync
  for m in "$root" "$root/efi"; do
    if mountpoint -q "$m"; then fstrim -v "$m" || echo "cleanup.sh: fstrim $m failed (not supported?)" >&2; fi
  done
fi
echo "cleanup.sh: cleaned $root"
