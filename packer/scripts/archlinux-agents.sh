#!/usr/bin/env bash
# The agents on an Arch Linux target, owned by pacman:
#   1. install-agents.sh checks the staged tree, installs its files and enables the units
#   2. pkg/archlinux/tree-packages makes one package per agent from the same tree, split as the
#      project's own Arch packages are (same names, same files)
#   3. pacman installs them on the target and takes over the files step 1 put there
# Without step 3 the files belong to no package, and installing the project's packages later
# stops at "exists in filesystem"; with it, that install is an upgrade. Files no agent owns (the
# fallback network, the tree's manifest) stay the image's own, as on Debian and NixOS.
#
# Usage: archlinux-agents.sh TREE TARGET PACMAN [ARG...]
#   PACMAN [ARG...] runs pacman with TARGET as its root: `arch-chroot TARGET pacman` from the
#   Arch bootstrap (archlinux.sh), `pacman --root TARGET` elsewhere.
# Environment: TARGET_SEEN_AS, TARGET's path as that pacman sees it (/ through a chroot; default
#   TARGET itself).
set -euo pipefail

die() { echo "archlinux-agents.sh: $*" >&2; exit 1; }
[ "$#" -ge 3 ] || die "usage: $0 TREE TARGET PACMAN [ARG...]"
tree=${1%/}
target=${2%/}
shift 2
seen_as=${TARGET_SEEN_AS-$target}
seen_as=${seen_as%/}
here=$(cd "$(dirname "$0")" && pwd)
hcloud=$(dirname "$here")
# pkg/ is uploaded beside scripts/ on the build server, and is beside packer/ in a checkout.
packages=$hcloud/pkg/archlinux/tree-packages
[ -f "$packages" ] || packages=$(dirname "$hcloud")/pkg/archlinux/tree-packages
[ -f "$packages" ] || die "pkg/archlinux/tree-packages is missing beside $hcloud (pkg/ not uploaded?)"
[ -d "$target/var/lib/pacman" ] || die "$target has no pacman database: is it an Arch Linux root?"

bash "$here/install-agents.sh" "$tree" "$target"

cache=var/cache/hcloud-agents
rm -rf "${target:?}/$cache"
mapfile -t built < <(bash "$packages" "$tree" "$target/$cache")
[ "${#built[@]}" -gt 0 ] || die "tree-packages made no package of $tree"
seen=()
for p in "${built[@]}"; do seen+=("$seen_as/$cache/${p##*/}"); done
# The files are those step 1 installed, byte for byte: pacman may take them over.
"$@" -U --noconfirm --overwrite '*' "${seen[@]}"
rm -rf "${target:?}/$cache"
echo "archlinux-agents.sh: pacman owns the agents: ${built[*]##*/}"
