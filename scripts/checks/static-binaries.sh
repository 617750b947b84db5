#!/usr/bin/env bash
# Every agent binary of the musl release build must be fully static.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=target/x86_64-unknown-linux-musl/release
bad=0
n=0
for f in "$dir"/hcloud-*; do
  if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
  case "$f" in *.d) continue ;; esac
  n=$((n + 1))
  desc=$(file -b "$f")
  if ! grep -Eq 'statically linked|static-pie linked' <<<"$desc"; then
    echo "not static: $f: $desc"; bad=1
  fi
  if ldd "$f" 2>&1 | grep -q '=>'; then
    echo "ldd lists shared libraries for $f"; bad=1
  fi
done
[ "$n" -gt 0 ] || { echo "no binaries found in $dir"; exit 1; }
echo "$n static binaries"
exit "$bad"
