#!/usr/bin/env bash
# Run the maintainer scripts of the built .debs against logging stand-ins for
# deb-systemd-helper, deb-systemd-invoke, systemctl, udevadm and networkctl, inside a private
# mount namespace whose /run, /var/lib and /etc are empty tmpfs (so nothing of this machine is
# touched), and check that they do what debhelper's scripts do: enable on first install and
# keep a user's disable on upgrade, start/restart, stop on remove, mask on remove, purge state.
#   sudo pkg/debian/test-maintscripts.sh DIR-WITH-DEBS
set -euo pipefail

debs=$(cd "${1:?usage: test-maintscripts.sh DIR-WITH-DEBS}" && pwd)
if [ -z "${HCLOUD_IN_NS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "test-maintscripts.sh: needs root (unshare, tmpfs)" >&2; exit 1; }
  exec unshare --mount --propagation private env HCLOUD_IN_NS=1 "$0" "$@"
fi
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /etc

work=$(mktemp -d)
stubs="$work/stubs"
mkdir -p "$stubs"
export LOG="$work/log"
for tool in deb-systemd-helper deb-systemd-invoke systemctl udevadm networkctl; do
  cat >"$stubs/$tool" <<STUB
#!/bin/sh
echo "$tool \$*" >>"\$LOG"
case "$tool \$1 \$2" in
  "deb-systemd-helper --quiet was-enabled") exit "\${WAS_ENABLED:-0}" ;;
  "systemctl is-enabled --quiet") exit "\${NETWORKD_ENABLED:-1}" ;;
  "systemctl is-active --quiet") exit "\${NETWORKD_ACTIVE:-1}" ;;
esac
exit 0
STUB
  chmod 0755 "$stubs/$tool"
done
# postrm tests for /usr/bin/deb-systemd-helper (init-system-helpers) before calling it.
export PATH="$stubs:$PATH"

fail=0
check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; echo "--- log:"; cat "$LOG"; fail=1; fi
}
# shellcheck disable=SC2317 # called through check
logged() { grep -qxF "$1" "$LOG"; }
# shellcheck disable=SC2317 # called through check
not_logged() { ! grep -qF "$1" "$LOG"; }

extract() { # package → directory with its control files
  local d="$work/ctl/$1"
  mkdir -p "$d"
  dpkg-deb -e "$(echo "$debs/$1"_*.deb)" "$d"
  echo "$d"
}
run() { # dir script args...
  local d=$1 s=$2
  shift 2
  : >"$LOG"
  [ -x "$d/$s" ] || return 0
  sh -e "$d/$s" "$@"
}

net=$(extract hcloud-network)
meta=$(extract hcloud-dl-metadata)
vol=$(extract hcloud-volumes)

mkdir -p /run/systemd/system

# First install on a server where networkd is off (Debian with ifupdown).
run "$net" postinst configure
check "first install enables each unit" logged "deb-systemd-helper enable hcloud-network.service"
check "first install enables the path unit" logged "deb-systemd-helper enable hcloud-network-refresh.path"
check "first install starts" logged "deb-systemd-invoke start hcloud-network.service"
check "systemd reloaded" logged "systemctl --system daemon-reload"
check "udev rules reloaded" logged "udevadm control --reload-rules"
check "networkd started when it was off" logged "systemctl enable --now systemd-networkd.service"
check "and that is remembered" test -e /var/lib/hcloud-network/started-networkd

# Upgrade: restart; the user's disable is kept (was-enabled false → update-state only).
WAS_ENABLED=1 run "$net" postinst configure 0.0.9
check "upgrade restarts" logged "deb-systemd-invoke restart hcloud-network.service"
check "a disabled unit stays disabled" not_logged "deb-systemd-helper enable"
check "a disabled unit's state is updated" logged "deb-systemd-helper update-state hcloud-network.service"
check "networkd is not enabled twice" not_logged "systemd-networkd"

# Remove: stop every unit, mask, drop the generated files, stop networkd again.
mkdir -p /run/systemd/network
: >/run/systemd/network/10-hcloud-public.network
: >/run/systemd/network/10-hcloud-private-1.network
: >/run/systemd/network/10-netplan-eth0.network
run "$net" prerm remove
check "remove stops the service" logged "deb-systemd-invoke stop hcloud-network.service"
check "remove stops the refresh service" logged "deb-systemd-invoke stop hcloud-network-refresh.service"
check "remove stops the path unit" logged "deb-systemd-invoke stop hcloud-network-refresh.path"
run "$net" postrm remove
check "remove masks" logged "deb-systemd-helper mask hcloud-network.service"
check "generated networkd files removed" test ! -e /run/systemd/network/10-hcloud-public.network
check "generated private file removed" test ! -e /run/systemd/network/10-hcloud-private-1.network
check "other networkd files kept" test -e /run/systemd/network/10-netplan-eth0.network
check "networkd stopped again" logged "systemctl disable --now systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service"
check "marker gone" test ! -e /var/lib/hcloud-network/started-networkd
run "$net" postrm purge
check "purge purges the helper state" logged "deb-systemd-helper purge hcloud-network.service"
check "purge unmasks" logged "deb-systemd-helper unmask hcloud-network.service"

# A server that already runs networkd (Ubuntu): left running, reloaded on remove.
NETWORKD_ENABLED=0 run "$net" postinst configure
check "running networkd is not touched" not_logged "systemctl enable --now systemd-networkd"
NETWORKD_ACTIVE=0 run "$net" postrm remove
check "running networkd is reloaded" logged "networkctl reload"
check "and not stopped" not_logged "disable --now systemd-networkd"

# Purging hcloud-dl-metadata removes the document and its link; removing keeps them.
mkdir -p /var/lib/hcloud-dl-metadata
echo '{}' >/var/lib/hcloud-dl-metadata/hcloud-metadata.json
ln -sfn /var/lib/hcloud-dl-metadata/hcloud-metadata.json /etc/hcloud-metadata.json
run "$meta" postrm remove
check "remove keeps the document" test -e /etc/hcloud-metadata.json
run "$meta" postrm purge
check "purge removes the link" test ! -L /etc/hcloud-metadata.json
check "purge removes the document" test ! -e /var/lib/hcloud-dl-metadata

# hcloud-volumes: only a template unit, so nothing to enable or start.
run "$vol" postinst configure
check "template unit is never enabled" not_logged "deb-systemd-helper enable"
check "udev rules reloaded for the volume rule" logged "udevadm control --reload-rules"

# In a chroot without systemd running (an image build): enabled, not started.
rm -rf /run/systemd/system
run "$meta" postinst configure
check "chroot: enabled" logged "deb-systemd-helper enable hcloud-dl-metadata.service"
check "chroot: nothing started" not_logged "deb-systemd-invoke"

rm -rf "$work"
exit $fail
