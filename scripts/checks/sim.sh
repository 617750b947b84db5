#!/usr/bin/env bash
# Static checks of the simulator's shell: the local-try wrapper and the guest image recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
shellcheck scripts/sim crates/hcloud-sim/image/recipe.sh
bash -n scripts/sim
echo "simulator scripts: shellcheck clean"
