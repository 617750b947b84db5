#!/usr/bin/env bash
# Static checks of hcloud-network's units, udev rule and test script: systemd-analyze verify and
# security (exposure must stay at or below 2.0), the udev rule parsed by udevadm, shellcheck.
set -euo pipefail
cd "$(dirname "$0")/../.."
failed=0
bad() { echo "network check FAILED: $*" >&2; failed=1; }

units=(systemd/hcloud-network.service systemd/hcloud-network-refresh.service systemd/hcloud-network-refresh.path)
for u in "${units[@]}"; do
  # The binaries are not installed here; everything else must verify cleanly.
  out=$(systemd-analyze verify "$u" 2>&1 | grep -v -E "Command /usr/bin/hcloud-[a-z-]+ is not executable" || true)
  [ -z "$out" ] || bad "systemd-analyze verify $u: $out"
done
for u in systemd/hcloud-network.service systemd/hcloud-network-refresh.service; do
  line=$(systemd-analyze security --offline=true "$u" 2>&1 | grep "Overall exposure level" || true)
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "$u: exposure ${score:-unknown}"
  awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }' || bad "$u exposure ${score:-unknown} > 2.0"
done

# The udev rule, parsed by udevadm with only this rule installed (in a private mount namespace).
# shellcheck disable=SC2016 # expanded by the inner bash
rules_out=$(unshare --mount --propagation private bash -c '
  set -e
  d=$(mktemp -d)
  cp systemd/81-hcloud-network.rules "$d/"
  mount --bind "$d" /usr/lib/udev/rules.d
  mkdir -p /etc/udev/rules.d /run/udev
  mount -t tmpfs tmpfs /etc/udev/rules.d
  mount -t tmpfs tmpfs /run/udev
  udevadm test --action=add /sys/class/net/lo 2>&1
' || true)
grep -q "Reading rules file: .*81-hcloud-network.rules" <<<"$rules_out" || bad "udevadm did not read 81-hcloud-network.rules"
if grep -E "81-hcloud-network.rules:[0-9]+ " <<<"$rules_out"; then bad "udevadm complains about 81-hcloud-network.rules"; fi

shellcheck crates/hcloud-network/tests/networkd-netns.sh crates/hcloud-network/tests/udev-rule.sh || bad "shellcheck of the test scripts"
exit "$failed"
