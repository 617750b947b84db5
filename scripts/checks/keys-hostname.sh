#!/usr/bin/env bash
# Static checks of the hostname and SSH key units: systemd-analyze verify, security exposure
# (hostname at most 1.5 with its fallback allowed, SSH keys at most 1.0), and the orderings the
# agents rely on.
set -euo pipefail
cd "$(dirname "$0")/../.."
failed=0
bad() { echo "keys-hostname check FAILED: $*" >&2; failed=1; }

check() {
  local u=$1 max=$2 out line score
  # The binaries are not installed here; everything else must verify cleanly.
  out=$(systemd-analyze verify "$u" 2>&1 | grep -v -E "Command /usr/bin/hcloud-[a-z-]+ is not executable" || true)
  [ -z "$out" ] || bad "systemd-analyze verify $u: $out"
  line=$(systemd-analyze security --offline=true "$u" 2>&1 | grep "Overall exposure level" || true)
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "$u: exposure ${score:-unknown}"
  awk -v s="${score:-99}" -v m="$max" 'BEGIN { exit !(s <= m) }' || bad "$u exposure ${score:-unknown} > $max"
  grep -qx "After=hcloud-dl-metadata.service" "$u" || bad "$u is not ordered after hcloud-dl-metadata.service"
  grep -qx "WantedBy=multi-user.target" "$u" || bad "$u is not wanted by multi-user.target"
}

check systemd/hcloud-hostname.service 1.5
check systemd/hcloud-ssh-keys.service 1.0
grep -qx "Before=sshd.service ssh.service systemd-user-sessions.service" systemd/hcloud-ssh-keys.service \
  || bad "hcloud-ssh-keys.service must run before sshd.service, ssh.service and systemd-user-sessions.service"
exit "$failed"
