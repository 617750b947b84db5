#!/usr/bin/env bash
# Static checks of the hostname and SSH key units: systemd-analyze verify, security exposure
# (hostname at most 1.5 with its fallback allowed, SSH keys at most 1.0), and the orderings the
# agents rely on.
set -euo pipefail
cd "$(dirname "$0")/../.."
failed=0
bad() { echo "keys-hostname check FAILED: $*" >&2; failed=1; }

# shellcheck source=scripts/lib/unit-checks.sh
. scripts/lib/unit-checks.sh

check() {
  local u=$1 max=$2
  unit_verifies "$u"
  unit_exposure_at_most "$u" "$max"
  grep -qx "After=hcloud-dl-metadata.service" "$u" || bad "$u is not ordered after hcloud-dl-metadata.service"
  grep -qx "WantedBy=multi-user.target" "$u" || bad "$u is not wanted by multi-user.target"
}

check systemd/hcloud-hostname.service 1.5
check systemd/hcloud-ssh-keys.service 1.0
grep -qx "Before=sshd.service ssh.service systemd-user-sessions.service" systemd/hcloud-ssh-keys.service \
  || bad "hcloud-ssh-keys.service must run before sshd.service, ssh.service and systemd-user-sessions.service"
exit "$failed"
