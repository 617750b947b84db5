#!/usr/bin/env bash
# Recipe of the local Debian mirror the simulated build servers install from: only the packages
# a debootstrap of SUITE with PACKAGES needs, as Debian's mirror served them (debootstrap checked
# them against Debian's archive key while downloading), with an index of just those packages and
# a Release file signed by a key of the mirror's own (TARGET_DIR/mirror-keyring.asc). The build
# is given that keyring, so its debootstrap checks the signature and every hash as on Hetzner.
# The download runs with the rescue system's own debootstrap (chroot into RESCUE_ROOT), so it
# resolves exactly the packages the build server will ask for.
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
full=$lists/${prefix}_main_binary-${arch}_Packages
[ -f "$full" ] || die "debootstrap left no Packages index in $lists"
dists=$target/dists/$suite
mkdir -p "$dists/main/binary-$arch"

# Each downloaded .deb goes to its pool path (the Filename of its Packages stanza), and the
# mirror's index lists exactly those stanzas, unchanged.
awk -v archives="$archives" -v out="$target" -v index_out="$dists/main/binary-$arch/Packages" '
  function flush() {
    if (pkg != "" && file != "") {
      v = ver; gsub(/:/, "%3a", v)
      deb = archives "/" pkg "_" v "_" a ".deb"
      if ((getline line < deb) >= 0) {
        close(deb)
        print deb "\t" out "/" file
        printf "%s\n", stanza > index_out
      }
    }
    pkg = ver = a = file = stanza = ""
  }
  /^$/ { flush(); next }
  { stanza = stanza $0 "\n" }
  /^Package: / { pkg = $2 }
  /^Version: / { ver = $2 }
  /^Architecture: / { a = $2 }
  /^Filename: / { file = $2 }
  END { flush() }
' "$full" | while IFS=$'\t' read -r deb dest; do
  mkdir -p "$(dirname "$dest")"
  mv "$deb" "$dest"
done
left=$(find "$archives" -name '*.deb' | wc -l)
[ "$left" -eq 0 ] || die "$left downloaded packages have no stanza in the Packages index"
gzip -9n -k "$dists/main/binary-$arch/Packages"

# The Release file, signed with the mirror's own key (made here; the build gets its public
# half as the keyring to check against). Debian's own index lists some 60000 packages, which a
# build server under emulation takes minutes to read; this one lists what the build needs.
{
  echo "Origin: Debian"
  echo "Label: Debian"
  echo "Suite: $suite"
  echo "Codename: $suite"
  echo "Date: $(LC_ALL=C date -u -R)"
  echo "Architectures: $arch"
  echo "Components: main"
  echo "Description: the packages a debootstrap of $suite needs (hcloud-sim)"
  echo "SHA256:"
  for f in main/binary-$arch/Packages main/binary-$arch/Packages.gz; do
    printf ' %s %s %s\n' "$(sha256sum "$dists/$f" | cut -d' ' -f1)" "$(stat -c %s "$dists/$f")" "$f"
  done
} > "$dists/Release"
export GNUPGHOME=$work/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "hcloud-sim mirror <mirror@hcloud-sim.invalid>" ed25519 sign never
gpg --batch --quiet --yes --clearsign -o "$dists/InRelease" "$dists/Release"
gpg --batch --quiet --yes --armor --detach-sign -o "$dists/Release.gpg" "$dists/Release"
gpg --batch --quiet --armor --export > "$target/mirror-keyring.asc"
count=$(find "$target/pool" -name '*.deb' | wc -l)
echo "mirror.sh: $count packages of $suite in $target, signed by the key in mirror-keyring.asc"
