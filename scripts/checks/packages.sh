#!/usr/bin/env bash
# Checks of the volumes agent's units and of the packaging (pkg/): unit verify and security
# (exposure at or below 2.0), the udev rule parsed by udevadm, shellcheck of every script; then,
# from a tree staged by `hcloud-image dist --no-build` out of the static build scripts/test made:
# the .debs built and passed through lintian, their contents and dependencies, their
# maintainer scripts run against stand-ins (pkg/debian/test-maintscripts.sh), the release
# tarball and its install.sh in temporary roots (pkg/release/test-install.sh), the Arch
# PKGBUILD's package functions on the tree and its .SRCINFO (makepkg --printsrcinfo) against the
# checked-in one. Every package form must install each agent's manual page (rendered by man -l
# without warnings) and its bash, zsh and fish completions (scripts/lib/manual-checks.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
failed=0
bad() { echo "packages check FAILED: $*" >&2; failed=1; }

# --- the volumes agent's unit and rule
# shellcheck source=scripts/lib/unit-checks.sh
. scripts/lib/unit-checks.sh
# shellcheck source=scripts/lib/manual-checks.sh
. scripts/lib/manual-checks.sh
unit_verifies systemd/hcloud-volumes@.service
unit_exposure_at_most systemd/hcloud-volumes@.service 2.0
udev_rule_parses systemd/81-hcloud-volumes.rules

# --- scripts
shellcheck -x pkg/debian/build-debs pkg/debian/test-maintscripts.sh pkg/release/make-release \
  pkg/release/test-install.sh pkg/lib/agents.sh pkg/archlinux/tree-packages scripts/lib/manual-checks.sh || bad "shellcheck of the packaging scripts"
shellcheck -s sh pkg/release/install.sh pkg/debian/hooks/* || bad "shellcheck of install.sh and the hooks"

# --- a staged tree from the static build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! cargo run -q --locked -p hcloud-image -- dist --no-build --arch x86_64 --out "$work/tree" >/dev/null; then
  bad "cannot stage a tree: build the static agents first (cargo build --release --locked --target x86_64-unknown-linux-musl --workspace --bins)"
  exit 1
fi
manifest="$work/tree/usr/share/hcloud-agents/manifest.json"
version=$(jq -r .version "$manifest")
mapfile -t agents < <(jq -r '.binaries[]' "$manifest")

# --- the host tools' section 1 pages and completions (no package ships the tools)
tools=(hcloud-image hcloud-sim hcloud-fake-metadata hcloud-fake-cloud)
if cargo run -q --locked -p hcloud-image -- manuals --out "$work/tools" "${tools[@]}" >/dev/null; then
  for t in "${tools[@]}"; do
    manuals_installed "$work/tools" "" "$t" 1 share/zsh/site-functions || bad "$t: manual page or completions"
  done
else
  bad "hcloud-image manuals"
fi

# --- Debian packages
if pkg/debian/build-debs --tree "$work/tree" --out "$work/debs"; then
  lintian --fail-on warning,error "$work"/debs/*.deb 2>&1 | grep -v "running with root privileges" || true
  lintian --fail-on warning,error "$work"/debs/*.deb >/dev/null 2>&1 || bad "lintian"
  for a in "${agents[@]}"; do
    deb="$work/debs/${a}_${version}_amd64.deb"
    [ -f "$deb" ] || { bad "no package for $a"; continue; }
    list=$(dpkg-deb -c "$deb")
    grep -q " ./usr/bin/$a$" <<<"$list" || bad "$a.deb lacks /usr/bin/$a"
    # Its manual page renders without warnings; its completions are where Debian's shells look.
    mkdir -p "$work/deb-root/$a"
    dpkg-deb -x "$deb" "$work/deb-root/$a"
    manuals_installed "$work/deb-root/$a" usr "$a" 8 usr/share/zsh/vendor-completions || bad "$a.deb: manual page or completions"
  done
  # Every file of the tree is in exactly one package, except the image's fallback network.
  all_lists=$(for d in "$work"/debs/*.deb; do dpkg-deb -c "$d"; done)
  for f in $(jq -r '.files[].path' "$manifest"); do
    p=${f/#usr\/share\/zsh\/site-functions\//usr/share/zsh/vendor-completions/}
    n=$(grep -c " ./$p$" <<<"$all_lists" || true)
    case "$f" in
      usr/lib/systemd/network/*) [ "$n" -eq 0 ] || bad "$f is image-only but packaged" ;;
      *) [ "$n" -eq 1 ] || bad "$f is in $n packages" ;;
    esac
  done
  vol="$work/debs/hcloud-volumes_${version}_amd64.deb"
  list=$(dpkg-deb -c "$vol")
  grep -q " ./usr/lib/udev/rules.d/81-hcloud-volumes.rules$" <<<"$list" || bad "hcloud-volumes.deb lacks its udev rule"
  grep -q " ./usr/lib/systemd/system/hcloud-volumes@.service$" <<<"$list" || bad "hcloud-volumes.deb lacks its unit"
  grep -q "hcloud-dl-metadata (= $version)" <<<"$(dpkg-deb -f "$work/debs/hcloud-network_${version}_amd64.deb" Depends)" ||
    bad "hcloud-network does not depend on hcloud-dl-metadata"
  for d in "$work"/debs/*.deb; do
    c="$work/ctl/$(basename "$d" .deb)"
    mkdir -p "$c"
    dpkg-deb -e "$d" "$c"
    for s in "$c"/postinst "$c"/prerm "$c"/postrm; do
      [ -f "$s" ] || continue
      sh -n "$s" || bad "$s: syntax"
      # SC2043: a package with one unit loops once over it, on purpose.
      shellcheck -s sh -e SC2043 "$s" || bad "shellcheck $(basename "$d") $(basename "$s")"
    done
  done
  pkg/debian/test-maintscripts.sh "$work/debs" || bad "maintainer scripts"
else
  bad "build-debs"
fi

# --- release tarball and install.sh
if pkg/release/make-release --tree x86_64="$work/tree" --out "$work/release"; then
  pkg/release/test-install.sh "$work/release/hcloud-agents-$version-x86_64.tar.gz" || bad "install.sh"
  grep -q "^hcloud-agents-$version/Cargo.lock$" <<<"$(tar -tzf "$work/release/hcloud-agents-$version.tar.gz")" ||
    bad "the source tarball lacks Cargo.lock"
  grep -q "^sha256sums=('[0-9a-f]\{64\}')$" "$work/release/PKGBUILD" || bad "make-release did not fill the PKGBUILD checksum"
else
  bad "make-release"
fi

# --- Arch Linux: each package function of the PKGBUILD run on the staged tree, as makepkg's
# package() step would (the build step is the static build and dist above).
(
  pkgdir_root="$work/arch-pkg"
  srcdir="$work/arch-src"
  mkdir -p "$srcdir"
  # shellcheck source=pkg/archlinux/PKGBUILD
  . pkg/archlinux/PKGBUILD
  ln -s "$PWD" "$srcdir/$pkgbase-$pkgver"
  ln -s "$work/tree" "$srcdir/tree"
  for a in "${agents[@]}"; do
    pkgdir="$pkgdir_root/$a"
    mkdir -p "$pkgdir"
    "package_$a" || { bad "PKGBUILD package_$a"; continue; }
    [ -x "$pkgdir/usr/bin/$a" ] || bad "the Arch package $a lacks /usr/bin/$a"
    manuals_installed "$pkgdir" usr "$a" 8 usr/share/zsh/site-functions || bad "the Arch package $a: manual page or completions"
  done
  exit "$failed"
) || failed=1

# --- Arch Linux: .SRCINFO up to date, package list and version match the workspace.
# makepkg refuses root, so it runs as nobody in a directory of its own.
arch_dir="$work/arch"
mkdir -p "$arch_dir"
cp pkg/archlinux/PKGBUILD "$arch_dir/"
chmod 0777 "$work" "$arch_dir"
if [ "$(id -u)" -eq 0 ]; then
  srcinfo=$(cd "$arch_dir" && runuser -u nobody -- makepkg --printsrcinfo) || bad "makepkg --printsrcinfo"
else
  srcinfo=$(cd "$arch_dir" && makepkg --printsrcinfo) || bad "makepkg --printsrcinfo"
fi
diff -u pkg/archlinux/.SRCINFO <(printf '%s\n' "$srcinfo") ||
  bad "pkg/archlinux/.SRCINFO is stale: regenerate it with makepkg --printsrcinfo > .SRCINFO"
grep -q "^	pkgver = $version$" <<<"$srcinfo" || bad "PKGBUILD pkgver is not the workspace version $version"
want=$(printf '%s\n' "${agents[@]}" | sort)
have=$(sed -n 's/^pkgname = //p' <<<"$srcinfo" | sort)
[ "$want" = "$have" ] || bad "PKGBUILD packages (${have//$'\n'/ }) are not the agents (${want//$'\n'/ })"

exit "$failed"
