#!/usr/bin/env bash
# systemd/81-hcloud-network.rules evaluated by udevadm on real network devices in a network
# namespace (root; udev, iproute2, util-linux). udevadm test runs the rules without running RUN
# programs and prints what it would run. Only virtual devices can be made here, so the
# "physical NIC" cases use the rule without its /devices/virtual exclusion; the real rule is
# checked to exclude them.
set -euo pipefail

if [ "${1:-}" != "--inner" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (network namespace, mounts)" >&2; exit 1; }
  command -v udevadm >/dev/null || { echo "FAIL: udevadm is missing: run scripts/install-deps" >&2; exit 1; }
  NS=hcn-udev-$$
  ip netns add "$NS"
  trap 'ip netns del "$NS"' EXIT
  # Private mount namespace: only this rule installed, a throw-away udev database.
  ip netns exec "$NS" unshare --mount --propagation private "$0" --inner
  echo PASS
  exit 0
fi

RULE="$(cd -P "$(dirname "$0")/../../.." && pwd)/systemd/81-hcloud-network.rules"
fail() { echo "FAIL: $*" >&2; exit 1; }
rules=$(mktemp -d)
mount --bind "$rules" /usr/lib/udev/rules.d
mkdir -p /etc/udev/rules.d /run/udev
mount -t tmpfs tmpfs /etc/udev/rules.d
mount -t tmpfs tmpfs /run/udev

# udevtest ACTION DEV: the properties and RUN programs udev would apply.
udevtest() { udevadm test --action="$1" "/sys/class/net/$2" 2>&1 | grep -E "^(HCLOUD_PRIVATE_NIC=|run: )" || true; }
install_rule() { rm -f /run/udev/data/*; cp "$1" /usr/lib/udev/rules.d/81-hcloud-network.rules; }

ip link add priv0 address 86:00:00:12:34:56 type veth peer name dock0 address 86:01:02:03:04:05

install_rule "$RULE"
out=$(udevtest add priv0)
[ -z "$out" ] || fail "the rule matched a virtual device: $out"
echo "ok: virtual devices (veth, bridges) are not matched, even with a 86:00:00:* MAC"

grep -v '^DEVPATH=="/devices/virtual/\*"' "$RULE" >"$rules/physical.rules"
install_rule "$rules/physical.rules"
out=$(udevtest add priv0)
grep -qx "HCLOUD_PRIVATE_NIC=1" <<<"$out" || fail "add: no HCLOUD_PRIVATE_NIC=1: $out"
grep -qx "run: '/usr/bin/hcloud-network --queue-refresh -add-priv0'" <<<"$out" || fail "add: no queue-refresh: $out"
echo "ok: add of a 86:00:00:* NIC marks it and queues a refresh"
out=$(udevtest add dock0)
[ -z "$out" ] || fail "the rule matched a 86:01:* MAC: $out"
echo "ok: other 86:* MACs are not matched"
out=$(udevtest remove priv0)
grep -qx "run: '/usr/bin/hcloud-network --queue-refresh -remove-priv0'" <<<"$out" || fail "remove: no queue-refresh: $out"
echo "ok: remove matches through the mark kept in the udev database"
rm -f /run/udev/data/*
out=$(udevtest remove priv0)
[ -z "$out" ] || fail "remove without the mark matched: $out"
echo "ok: remove of an unmarked NIC is ignored"
