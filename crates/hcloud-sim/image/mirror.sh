#!/usr/bin/env bash
# Recipe of the local Debian mirror the simulated build servers install from: only the packages
# a debootstrap of SUITE with PACKAGES needs, with Debian's own signed Release files, so the
# template's debootstrap checks every signature and hash against Debian's archive key, as it
# does on Hetzner. The download runs with the rescue system's own debootstrap (chroot into
# RESCUE_ROOT), so it resolves exactly the packages the build server will ask for.
#
# The simulator caches the result under a key made from this file's hash, the rescue recipe's
# and the package list, and serves it over plain HTTP inside the simulated cloud.
#
# Usage: mirror.sh TARGET_DIR RESCUE_ROOT SUITE PACKAGES_FILE [MIRROR]
#   (as root; TARGET_DIR must not exist; PACKAGES_FILE: one package per line, # comments)
set -euo pipefail
target=$1
rescue=$2
suite=$3
list=$4
mirror=${5:-http://deb.debian.org/debian}
arch=amd64

die() { echo "mirror.sh: $*" >&2; exit 1; }
[ -x "$rescue/usr/sbin/debootstrap" ] || die "$rescue has no debootstrap (the rescue image)"
[ -f "$list" ] || die "no package list $list"
include=$(sed -e 's/#.*//' "$list" | tr -s ' \t\n' '\n' | grep -v '^$' | paste -sd, -)
[ -n "$include" ] || die "$list lists no package"

work=$(mktemp -d)
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The rescue tree stays pristine: the download goes to a bind-mounted directory, and name
# resolution comes from the host through a private /run.
mkdir -p "$work/dl" "$work/run/systemd/resolve"
cp -L /etc/resolv.conf "$work/run/systemd/resolve/stub-resolv.conf"
for d in proc sys dev; do
  mount --bind "/$d" "$rescue/$d"
  mounted+=("$rescue/$d")
done
mount --bind "$work/run" "$rescue/run"
mounted+=("$rescue/run")
mkdir -p "$rescue/mnt"
mount --bind "$work/dl" "$rescue/mnt"
mounted+=("$rescue/mnt")

chroot "$rescue" debootstrap --download-only --variant=minbase --arch="$arch" \
  --include="$include" "$suite" /mnt/root "$mirror"

lists=$work/dl/root/var/lib/apt/lists
archives=$work/dl/root/var/cache/apt/archives
host=${mirror#*://}
prefix=$(echo "${host%/}" | tr / _)_dists_${suite}
dists=$target/dists/$suite
mkdir -p "$dists/main/binary-$arch"
found=0
for f in InRelease Release Release.gpg; do
  if [ -f "$lists/${prefix}_$f" ]; then
    cp "$lists/${prefix}_$f" "$dists/$f"
    found=1
  fi
done
[ "$found" = 1 ] || die "debootstrap left no Release file in $lists"
cp "$lists/${prefix}_main_binary-${arch}_Packages" "$dists/main/binary-$arch/Packages"

# Each downloaded .deb goes to its pool path (the Filename of its Packages stanza).
awk -v archives="$archives" -v out="$target" '
  function flush() {
    if (pkg != "" && file != "") {
      v = ver; gsub(/:/, "%3a", v)
      print archives "/" pkg "_" v "_" a ".deb" "\t" out "/" file
    }
    pkg = ver = a = file = ""
  }
  /^Package: / { pkg = $2 }
  /^Version: / { ver = $2 }
  /^Architecture: / { a = $2 }
  /^Filename: / { file = $2 }
  /^$/ { flush() }
  END { flush() }
' "$dists/main/binary-$arch/Packages" | while IFS=$'\t' read -r deb dest; do
  if [ -f "$deb" ]; then
    mkdir -p "$(dirname "$dest")"
    mv "$deb" "$dest"
  fi
done
left=$(find "$archives" -name '*.deb' | wc -l)
[ "$left" -eq 0 ] || die "$left downloaded packages have no stanza in the Packages file"
count=$(find "$target/pool" -name '*.deb' | wc -l)
echo "mirror.sh: $count packages of $suite in $target"
