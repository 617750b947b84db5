#!/usr/bin/env bash
# The rendered files through a real systemd-networkd, in network namespaces this script creates.
#
#   networkd-netns.sh /path/to/hcloud-network          (root; iproute2, systemd, dbus, dnsmasq)
#
# "srv" plays Hetzner: the public gateway 172.31.1.1 / fe80::1 with a DHCP server (dnsmasq,
# a /32 lease with classless routes), the metadata address 169.254.169.254, and the private
# network gateways. "vm" plays the server: its own mount namespace with an empty /run, a private
# system D-Bus, and systemd-networkd. hcloud-network runs there on the live root, so it writes
# /run/systemd/network and asks networkd to reload over D-Bus exactly as on a server.
# Checks what a user would: addresses, routes, MTU, reachability; then a NIC attached and
# detached at runtime. No traffic leaves the namespaces.
set -euo pipefail

if [ "${1:-}" = "--inner" ]; then
  shift
  inner=1
else
  inner=0
fi
BIN=$(realpath "$1")
HERE=$(cd -P "$(dirname "$0")" && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }
# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what (waited ${secs}s)"
    sleep 0.2
  done
  echo "ok: $what"
}
has() { # has PATTERN COMMAND...: the command's output matches the extended regex
  local pat=$1 out; shift
  # Not a pipe into grep -q: with pipefail, an early grep exit would fail the command.
  out=$("$@" 2>/dev/null) || return 1
  grep -Eq -- "$pat" <<<"$out"
}

if [ "$inner" = 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, mounts)"
  for tool in ip unshare dnsmasq dbus-daemon /usr/lib/systemd/systemd-networkd; do
    command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps"
  done
  WORK=$(mktemp -d /tmp/hcloud-network-netns.XXXXXX)
  SRV=hcn-srv-$$
  VM=hcn-vm-$$
  # shellcheck disable=SC2317 # a trap handler
  cleanup() {
    if [ -f "$WORK/dnsmasq.pid" ]; then kill "$(cat "$WORK/dnsmasq.pid")" 2>/dev/null || true; fi
    ip netns del "$VM" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
  }
  trap cleanup EXIT
  ip netns add "$SRV"
  ip netns add "$VM"
  S() { ip -n "$SRV" "$@"; }

  # Public link: 96:00:00:ab:cd:ef on the server side.
  ip link add pub0 netns "$VM" address 96:00:00:ab:cd:ef type veth peer name pubgw netns "$SRV"
  S link set lo up
  S link set pubgw up
  S addr add 172.31.1.1/32 dev pubgw
  S addr add 203.0.113.1/24 dev pubgw # only so dnsmasq has a context for the lease
  S -6 addr add fe80::1/64 dev pubgw nodad
  S route add 203.0.113.10/32 dev pubgw
  S route add 169.254.0.0/16 dev pubgw # answers to link-local clients (IPv6-only servers)
  S -6 route add 2001:db8:1234:5678::/64 dev pubgw
  S addr add 169.254.169.254/32 dev lo # the metadata service
  S addr add 198.51.100.1/32 dev lo # "the internet"
  S -6 addr add 2001:db8:ffff::1/128 dev lo nodad
  ip netns exec "$SRV" dnsmasq --conf-file=/dev/null --port=0 --interface=pubgw --bind-interfaces \
    --dhcp-range=203.0.113.10,203.0.113.10,255.255.255.0,1h \
    --dhcp-option=option:netmask,255.255.255.255 \
    --dhcp-option=option:classless-static-route,172.31.1.1/32,0.0.0.0,0.0.0.0/0,172.31.1.1 \
    --dhcp-option=option:dns-server,185.12.64.1 \
    --dhcp-leasefile="$WORK/leases" --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log"

  # Private network "backend": 86:00:00:5e:6f:70, gateway 10.20.0.1.
  ip link add priv0 netns "$VM" address 86:00:00:5e:6f:70 type veth peer name privgw0 netns "$SRV"
  S link set privgw0 up mtu 1450
  S addr add 10.20.0.1/32 dev privgw0
  S route add 10.20.1.0/24 dev privgw0

  export SRV VM WORK
  ip netns exec "$VM" unshare --mount --propagation private "$0" --inner "$BIN"
  echo "PASS"
  exit 0
fi

# ---- inside the server's namespaces ----
# Keep a handle on the "srv" namespace: /run is replaced below.
mkdir -p "$WORK/netns"
mount --rbind /run/netns "$WORK/netns"
in_srv() { nsenter --net="$WORK/netns/$SRV" "$@"; }
S() { in_srv ip "$@"; }
mount -o remount,ro /sys # no udevd here: read-only /sys tells networkd not to wait for it
mount -t tmpfs -o mode=0755 tmpfs /run
[ -d /etc/systemd/network ] && mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/network
[ -d /usr/lib/systemd/network ] && mount -t tmpfs -o mode=0755 tmpfs /usr/lib/systemd/network
mkdir -p /run/dbus /run/systemd/network /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp
chown -R systemd-network:systemd-network /run/systemd/netif
ip link set lo up

# The image's fallback network, matched to the public NIC by MAC here (veths are virtual
# devices, which the real file leaves alone on purpose).
sed -e '/^\[Match\]/,/^$/c\[Match]\nMACAddress=96:00:00:ab:cd:ef\n' \
  "$HERE/../../../systemd/99-hcloud-fallback.network" >/usr/lib/systemd/network/99-hcloud-fallback.network
grep -q "^DHCP=ipv4" /usr/lib/systemd/network/99-hcloud-fallback.network || fail "fallback file not derived"

dbus-daemon --system --fork --nopidfile --print-pid >"$WORK/dbus.pid"
SYSTEMD_LOG_LEVEL=debug /usr/lib/systemd/systemd-networkd >"$WORK/networkd.log" 2>&1 &
NETWORKD=$!
# shellcheck disable=SC2317 # a trap handler
finish() {
  local rc=$?
  kill "$NETWORKD" 2>/dev/null || true
  kill "$(cat "$WORK/dbus.pid")" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "---- networkd log (tail)"; tail -n 60 "$WORK/networkd.log"
    [ -n "${KEEP_LOG:-}" ] && cp "$WORK/networkd.log" "$KEEP_LOG"
    echo "---- addresses"; ip addr
    echo "---- routes"; ip route; ip -6 route
    echo "---- route to the metadata address"; ip route get 169.254.169.254 || true
    echo "---- srv"; S addr; S route; S -6 route
    echo "---- dnsmasq"; cat "$WORK/dnsmasq.log" 2>/dev/null || true
  fi
}
trap finish EXIT
wait_for "systemd-networkd is on the bus" 20 has "true" busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.freedesktop.network1

DOC=$WORK/hcloud-metadata.json
python3 - "$HERE/golden/three-private/document.json" "$DOC" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
# Attached at boot: "backend" with one alias IP. "mgmt" is attached later.
backend = [p for p in doc["network"]["private"] if p["network_name"] == "backend"][0]
backend["alias_ips"] = ["10.20.1.6"]
doc["network"]["private"] = [backend]
json.dump(doc, open(sys.argv[2], "w"), indent=2)
EOF

# drop_network NAME: the document without the private network NAME (it was detached).
drop_network() {
  python3 - "$DOC" "$1" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["network"]["private"] = [p for p in doc["network"]["private"] if p["network_name"] != sys.argv[2]]
json.dump(doc, open(sys.argv[1], "w"), indent=2)
EOF
}

echo "== first boot: only the image's fallback network"
wait_for "DHCP lease on pub0 from the fallback network" 30 has "inet 203\.0\.113\.10/32" ip -4 addr show dev pub0
wait_for "metadata address reachable with the fallback network" 10 ping -c1 -W1 169.254.169.254
ip monitor address route >"$WORK/monitor.log" 2>&1 &
MONITOR=$!

echo "== boot: hcloud-network on the live root"
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run1.log"
grep -q "asked systemd-networkd to reload" "$WORK/run1.log" || fail "no reload after writing files"
ls /run/systemd/network

wait_for "DHCP /32 lease on pub0" 30 has "inet 203\.0\.113\.10/32" ip -4 addr show dev pub0
wait_for "IPv4 default route via 172.31.1.1" 20 has "^default via 172\.31\.1\.1 dev pub0" ip -4 route show default
wait_for "static IPv6 address on pub0" 20 has "inet6 2001:db8:1234:5678::1/64 scope global" ip -6 addr show dev pub0 -tentative
wait_for "IPv6 default route via fe80::1" 20 has "^default via fe80::1 dev pub0" ip -6 route show default
has "via 172\.31\.1\.1 dev pub0" ip route get 169.254.169.254 || fail "169.254.169.254 is not pinned to the public gateway: $(ip route get 169.254.169.254)"
wait_for "private IP and alias IP on priv0" 20 bash -c 'ip -4 addr show dev priv0 | grep -q "inet 10.20.1.5/32" && ip -4 addr show dev priv0 | grep -q "inet 10.20.1.6/32"'
has "mtu 1450" ip link show dev priv0 || fail "priv0 MTU is not 1450: $(ip link show dev priv0)"
wait_for "route to the private gateway on-link" 20 has "^10\.20\.0\.1 .*scope link src 10\.20\.1\.5" ip -4 route show dev priv0
wait_for "route to the private network via its gateway" 20 has "^10\.20\.0\.0/16 via 10\.20\.0\.1 .*onlink" ip -4 route show dev priv0
! has "^default" ip -4 route show dev priv0 || fail "a default route on the private NIC"
ip addr show dev pub0
ip addr show dev priv0
ip route
ip -6 route show dev pub0

kill "$MONITOR"
if grep -E "^Deleted .*(203\.0\.113\.10|default via 172\.31\.1\.1)" "$WORK/monitor.log"; then
  fail "the public lease or its default route was dropped when hcloud-network took over"
fi
echo "ok: the DHCP address and default route stayed while hcloud-network's file replaced the fallback"

echo "== reachability"
wait_for "ping the metadata address 169.254.169.254" 10 ping -c1 -W1 169.254.169.254
wait_for "ping 198.51.100.1 over the public IPv4 default route" 10 ping -c1 -W1 198.51.100.1
wait_for "ping 2001:db8:ffff::1 over the IPv6 default route via fe80::1" 10 ping -6 -c1 -W1 2001:db8:ffff::1
wait_for "ping the private gateway 10.20.0.1" 10 ping -c1 -W1 10.20.0.1
wait_for "the private gateway side reaches the alias IP 10.20.1.6" 10 in_srv ping -c1 -W1 -I 10.20.0.1 10.20.1.6

echo "== a private DHCP lease with the 169.254.169.254 route through the private gateway"
ip route add 169.254.169.254/32 via 10.20.0.1 dev priv0 proto dhcp metric 1024
has "via 172\.31\.1\.1 dev pub0" ip route get 169.254.169.254 || fail "the private route took the metadata service: $(ip route get 169.254.169.254)"
echo "ok: $(ip route get 169.254.169.254 | head -1)"
ip route del 169.254.169.254/32 via 10.20.0.1 dev priv0

echo "== unchanged document: nothing written, no reload"
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run2.log"
grep -q "network configuration unchanged" "$WORK/run2.log" || fail "second run changed something"

echo "== a run that wrote files but was stopped before the reload: the next run reloads"
: >/run/systemd/network/.hcloud-network-reload-pending
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run2b.log"
grep -q "did not reload networkd: reloading now" "$WORK/run2b.log" || fail "pending reload not done"
grep -q "asked systemd-networkd to reload" "$WORK/run2b.log" || fail "pending reload not done"
[ ! -e /run/systemd/network/.hcloud-network-reload-pending ] || fail "pending mark left behind"

echo "== attach a network at runtime"
ip link add priv1 address 86:00:00:00:00:03 type veth peer name privgw1 netns "$WORK/netns/$SRV"
S link set privgw1 up mtu 1450
S addr add 192.168.100.1/32 dev privgw1
S route add 192.168.100.0/29 dev privgw1
python3 - "$HERE/golden/three-private/document.json" "$DOC" <<'EOF'
import json, sys
full = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
doc["network"]["private"].append([p for p in full["network"]["private"] if p["network_name"] == "mgmt"][0])
json.dump(doc, open(sys.argv[2], "w"), indent=2)
EOF
start=$(date +%s.%N)
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run3.log"
grep -q "wrote /run/systemd/network/10-hcloud-private-860000000003.network" "$WORK/run3.log" || fail "no file for the attached NIC"
grep -q "asked systemd-networkd to reload" "$WORK/run3.log" || fail "no reload after attach"
# shellcheck disable=SC2016 # expanded by the inner bash
wait_for "attached NIC has its IP and both alias IPs" 20 bash -c 'a=$(ip -4 addr show dev priv1); for ip in 192.168.100.2 192.168.100.3 192.168.100.4; do grep -q "inet $ip/32" <<<"$a" || exit 1; done'
wait_for "attached NIC routes its network via 192.168.100.1" 20 has "^192\.168\.100\.0/24 via 192\.168\.100\.1 .*onlink" ip -4 route show dev priv1
end=$(date +%s.%N)
echo "figure: attach configured in $(python3 -c "print(round($end - $start, 2))") s after hcloud-network started"
wait_for "ping the attached network's gateway" 10 ping -c1 -W1 192.168.100.1
wait_for "the gateway side reaches alias IP 192.168.100.4" 10 in_srv ping -c1 -W1 -I 192.168.100.1 192.168.100.4
# The public side was not disturbed by the reload.
has "inet 203\.0\.113\.10/32" ip -4 addr show dev pub0 || fail "the public lease was dropped by the reload"
has "inet 10\.20\.1\.5/32" ip -4 addr show dev priv0 || fail "the other private NIC lost its address"

echo "== a NIC that networkd failed before its file came: the next run reconfigures it"
# On a server, a hot-plugged NIC renamed while networkd configures it can end up "failed"
# (DHCPv4 client: EBUSY) under the image's fallback; a reload does not touch failed links.
# Here a foreign file that networkd refuses (a null MAC) fails the link the same way.
ip link add priv2 address 86:00:00:00:00:04 type veth peer name privgw2 netns "$WORK/netns/$SRV"
S link set privgw2 up mtu 1450
S addr add 192.168.101.1/32 dev privgw2
S route add 192.168.101.0/29 dev privgw2
printf '[Match]\nMACAddress=86:00:00:00:00:04\n\n[Link]\nMACAddress=00:00:00:00:00:00\n' \
  >/run/systemd/network/50-fails.network
networkctl reload
wait_for "priv2 is failed in networkd" 20 has "failed" networkctl list --no-legend --no-pager priv2
rm /run/systemd/network/50-fails.network
python3 - "$DOC" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["network"]["private"].append({
    "ip": "192.168.101.2", "alias_ips": [], "interface_num": 4,
    "mac_address": "86:00:00:00:00:04", "network_id": 4242, "network_name": "late",
    "network": "192.168.101.0/24", "subnet": "192.168.101.0/24", "gateway": "192.168.101.1"})
json.dump(doc, open(sys.argv[1], "w"), indent=2)
EOF
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run3b.log"
grep -q "priv2: systemd-networkd had given up on it" "$WORK/run3b.log" || fail "the failed link was not named"
wait_for "the failed NIC has its address from our file" 20 has "inet 192\.168\.101\.2/32" ip -4 addr show dev priv2
wait_for "the failed NIC routes its network via 192.168.101.1" 20 has "^192\.168\.101\.0/24 via 192\.168\.101\.1" ip -4 route show dev priv2
ip link del priv2
drop_network late
"$BIN" --metadata "$DOC" >/dev/null 2>&1

echo "== detach it"
ip link del priv1
drop_network mgmt
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run4.log"
grep -q "removed /run/systemd/network/10-hcloud-private-860000000003.network" "$WORK/run4.log" || fail "stale file not removed on detach"
[ ! -e /run/systemd/network/10-hcloud-private-860000000003.network ] || fail "file still there"
has "inet 10\.20\.1\.5/32" ip -4 addr show dev priv0 || fail "the remaining private NIC lost its address"
wait_for "public IPv4 still reachable after the detach" 10 ping -c1 -W1 198.51.100.1

echo "== IPv6-only: no DHCPv4, the metadata service on-link over IPv4 link-local"
kill "$(cat "$WORK/dnsmasq.pid")" # no DHCPv4 answer either
python3 - "$DOC" <<'EOF2'
import json, sys
doc = json.load(open(sys.argv[1]))
for k in ("ipv4_address", "ipv4_subnet", "ipv4_gateway"):
    doc["network"][k] = None
json.dump(doc, open(sys.argv[1], "w"), indent=2)
EOF2
"$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run5.log"
grep -q "wrote /run/systemd/network/10-hcloud-public.network: public 96:00:00:ab:cd:ef, IPv6 2001:db8:1234:5678::1/64 via fe80::1" "$WORK/run5.log" || fail "public file not rewritten for IPv6-only"
wait_for "IPv4 link-local address on pub0" 30 has "inet 169\.254\.[0-9]+\.[0-9]+/16" ip -4 addr show dev pub0
wait_for "169.254.169.254 is on-link on pub0" 10 has "^169\.254\.169\.254 dev pub0 src 169\.254\." ip route get 169.254.169.254
wait_for "ping the metadata address over link-local" 10 ping -c1 -W1 169.254.169.254
wait_for "IPv6 default route via fe80::1 still there" 10 has "^default via fe80::1 dev pub0" ip -6 route show default
wait_for "ping 2001:db8:ffff::1 over IPv6" 10 ping -6 -c1 -W1 2001:db8:ffff::1
ip addr show dev pub0

echo "== --private-dhcp: networkd accepts the file (no DHCP server on the private side here)"
HCLOUD_NETWORK_PRIVATE_DHCP=true "$BIN" --metadata "$DOC" 2>&1 | tee "$WORK/run6.log"
grep -q "wrote /run/systemd/network/10-hcloud-private-8600005e6f70.network: private 86:00:00:5e:6f:70, IPv4 by DHCP, alias IPs 10.20.1.6" "$WORK/run6.log" || fail "private file not switched to DHCP"
wait_for "alias IP stays static with DHCP" 20 has "inet 10\.20\.1\.6/32" ip -4 addr show dev priv0

# Every file was parsed without complaint (an unknown key or a bad value is only a warning).
sleep 0.5
if grep -E "(99-hcloud-fallback|10-hcloud-[a-z0-9-]+)\.network:[0-9]+" "$WORK/networkd.log"; then
  fail "networkd complained about a file"
fi
echo "ok: networkd parsed every file without a warning"
echo "inner: all checks passed"
