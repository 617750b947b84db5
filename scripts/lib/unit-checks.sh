# shellcheck shell=bash
# Checks of unit files and udev rules shared by scripts/checks/*.sh. Source it from the
# repository root after defining `bad MESSAGE` (which records a failure).

# systemd-analyze verify, ignoring only that the agents' binaries are not installed here.
unit_verifies() { # unit-file
  local out
  out=$(systemd-analyze verify "$1" 2>&1 | grep -v -E "Command /usr/bin/hcloud-[a-z-]+ is not executable" || true)
  [ -z "$out" ] || bad "systemd-analyze verify $1: $out"
}

# The `systemd-analyze security` exposure must stay at or below the limit.
unit_exposure_at_most() { # unit-file limit
  local line score
  line=$(systemd-analyze security --offline=true "$1" 2>&1 | grep "Overall exposure level" || true)
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "$1: exposure ${score:-unknown}"
  awk -v s="${score:-99}" -v m="$2" 'BEGIN { exit !(s <= m) }' || bad "$1 exposure ${score:-unknown} > $2"
}

# udevadm reads the rule (alone, in a private mount namespace) without complaint.
udev_rule_parses() { # rules-file
  local name out
  name=$(basename "$1")
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(unshare --mount --propagation private bash -c '
    set -e
    d=$(mktemp -d)
    cp "$1" "$d/"
    mount --bind "$d" /usr/lib/udev/rules.d
    mkdir -p /etc/udev/rules.d /run/udev
    mount -t tmpfs tmpfs /etc/udev/rules.d
    mount -t tmpfs tmpfs /run/udev
    udevadm test --action=add /sys/class/net/lo 2>&1
  ' bash "$1" || true)
  grep -q "Reading rules file: .*$name" <<<"$out" || bad "udevadm did not read $name"
  if grep -E "$name:[0-9]+ " <<<"$out"; then bad "udevadm complains about $name"; fi
}
