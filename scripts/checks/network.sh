#!/usr/bin/env bash
# Static checks of hcloud-network's units, udev rule and test script: systemd-analyze verify and
# security (exposure must stay at or below 2.0), the udev rule parsed by udevadm, shellcheck.
set -euo pipefail
cd "$(dirname "$0")/../.."
failed=0
bad() { echo "network check FAILED: $*" >&2; failed=1; }

# shellcheck source=scripts/lib/unit-checks.sh
. scripts/lib/unit-checks.sh

for u in systemd/hcloud-network.service systemd/hcloud-network-refresh.service systemd/hcloud-network-refresh.path; do
  unit_verifies "$u"
done
for u in systemd/hcloud-network.service systemd/hcloud-network-refresh.service; do
  unit_exposure_at_most "$u" 2.0
done
udev_rule_parses systemd/81-hcloud-network.rules

shellcheck crates/hcloud-network/tests/networkd-netns.sh crates/hcloud-network/tests/udev-rule.sh || bad "shellcheck of the test scripts"
exit "$failed"
