#!/usr/bin/env bash
# Test install.sh of a release tarball in temporary roots: what an install puts where (modes,
# dependencies, enabled units, manual pages and completions), and that --uninstall leaves the
# root exactly as it was.
#   pkg/release/test-install.sh TARBALL
set -euo pipefail

tarball=${1:?usage: test-install.sh hcloud-agents-<version>-<arch>.tar.gz}
# shellcheck source=scripts/lib/manual-checks.sh
. "$(dirname "$0")/../../scripts/lib/manual-checks.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
rel=$(echo "$work"/hcloud-agents-*)
inst="$rel/install.sh"
fail=0

check() { # description command...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

snapshot() { (cd "$1" && find . -printf '%p %y %m %l\n' | sort); }

mode_of() { stat -c %a "$1"; }

R="$work/root"
mkdir -p "$R/etc/systemd/system" "$R/usr/bin" "$R/var/lib"
echo "the user's" >"$R/etc/fstab"
echo '#!/bin/sh' >"$R/usr/bin/other-tool"
before=$(snapshot "$R")

out=$("$inst" --root "$R" hcloud-network)
check "dependency installed first" grep -q "installed hcloud-dl-metadata" <<<"$out"
check "binary 0755" test "$(mode_of "$R/usr/bin/hcloud-network")" = 755
check "dependency binary" test -x "$R/usr/bin/hcloud-dl-metadata"
check "unit 0644" test "$(mode_of "$R/usr/lib/systemd/system/hcloud-network.service")" = 644
check "udev rule" test -f "$R/usr/lib/udev/rules.d/81-hcloud-network.rules"
for u in hcloud-network.service hcloud-network-refresh.path hcloud-dl-metadata.service; do
  check "$u enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/$u"
done
check "the image's fallback network is not installed" test ! -e "$R/usr/lib/systemd/network/99-hcloud-fallback.network"
check "other agents are not installed" test ! -e "$R/usr/bin/hcloud-volumes"
check "files identical to the tarball's" cmp -s "$R/usr/bin/hcloud-network" "$rel/usr/bin/hcloud-network"
for a in hcloud-network hcloud-dl-metadata; do
  check "$a: manual page and completions (zsh: site-functions)" manuals_installed "$R" usr "$a" 8 usr/share/zsh/site-functions
done
# shellcheck disable=SC2317 # called through check
quiet() { "$@" >/dev/null; }
check "reinstall works" quiet "$inst" --root "$R" hcloud-network

if out=$("$inst" --root "$R" --uninstall hcloud-dl-metadata 2>&1); then
  check "a dependency in use is not removed" false
else
  check "a dependency in use is not removed" grep -q "hcloud-network needs hcloud-dl-metadata" <<<"$out"
fi
check "still there after the refusal" test -x "$R/usr/bin/hcloud-dl-metadata"

"$inst" --root "$R" --uninstall hcloud-network hcloud-dl-metadata >/dev/null
check "uninstall leaves the root as it was" test "$(snapshot "$R")" = "$before"

"$inst" --root "$R" --all >/dev/null
check "--all installs every agent" test -x "$R/usr/bin/hcloud-volumes"
check "--all: the volume rule" test -f "$R/usr/lib/udev/rules.d/81-hcloud-volumes.rules"
check "template units are not enabled" test ! -e "$R/etc/systemd/system/multi-user.target.wants/hcloud-volumes@.service"
"$inst" --root "$R" --uninstall --all >/dev/null
check "--uninstall --all leaves the root as it was" test "$(snapshot "$R")" = "$before"

"$inst" --root "$R" hcloud-network >/dev/null
"$inst" --root "$R" hcloud-volumes >/dev/null
"$inst" --root "$R" --uninstall hcloud-network hcloud-dl-metadata >/dev/null
check "the other agent stays" test -x "$R/usr/bin/hcloud-volumes"
check "and its rule" test -f "$R/usr/lib/udev/rules.d/81-hcloud-volumes.rules"
"$inst" --root "$R" --uninstall hcloud-volumes >/dev/null
check "agents removed one by one leave the root as it was" test "$(snapshot "$R")" = "$before"

# A Debian root: zsh completions where Debian's zsh looks; uninstall removes them again.
D="$work/debian"
mkdir -p "$D/etc"
echo 12.0 >"$D/etc/debian_version"
debian_before=$(snapshot "$D")
"$inst" --root "$D" --no-enable hcloud-volumes >/dev/null
check "Debian: manual page and completions (zsh: vendor-completions)" manuals_installed "$D" usr hcloud-volumes 8 usr/share/zsh/vendor-completions
check "Debian: no zsh completion in site-functions" test ! -e "$D/usr/share/zsh/site-functions"
"$inst" --root "$D" --uninstall hcloud-volumes >/dev/null
check "Debian: uninstall removes the manual page and completions" test "$(snapshot "$D")" = "$debian_before"

E="$work/empty"
mkdir "$E"
DESTDIR="$E" "$inst" --no-enable hcloud-volumes >/dev/null
check "DESTDIR is the root" test -x "$E/usr/bin/hcloud-volumes"
check "--no-enable enables nothing" test ! -e "$E/etc/systemd"
DESTDIR="$E" "$inst" --uninstall hcloud-volumes >/dev/null
check "an empty root stays empty" test -z "$(ls -A "$E")"

S="$work/a root/with spaces"
mkdir -p "$S/etc"
before_s=$(snapshot "$S")
check "a --root with spaces installs" quiet "$inst" --root "$S" hcloud-network
check "a --root with spaces: the binary" test -x "$S/usr/bin/hcloud-network"
check "a --root with spaces: nothing outside it" test ! -e "$work/a"
quiet "$inst" --root "$S" --uninstall hcloud-network hcloud-dl-metadata
check "a --root with spaces is left as it was" test "$(snapshot "$S")" = "$before_s"

mkdir -p "$R/var/lib/dpkg/info"
: >"$R/var/lib/dpkg/info/hcloud-volumes.list"
if out=$("$inst" --root "$R" hcloud-volumes 2>&1); then
  check "a Debian-packaged agent is not overwritten" false
else
  check "a Debian-packaged agent is not overwritten" grep -q "installed as a Debian package" <<<"$out"
fi
if out=$("$inst" --root "$R" hcloud-nope 2>&1); then
  check "unknown agent refused" false
else
  check "unknown agent refused" grep -q "unknown agent hcloud-nope" <<<"$out"
fi
exit $fail
