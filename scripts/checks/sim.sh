#!/usr/bin/env bash
# Static checks of the project's own shell: the local-try wrapper, the guest image recipe, and
# the test harness (scripts/test, install-deps, the checks and their library, .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
shellcheck scripts/sim crates/hcloud-sim/image/recipe.sh
bash -n scripts/sim
shellcheck -x scripts/test scripts/install-deps scripts/unit-security scripts/checks/*.sh scripts/lib/*.sh .ci/run
echo "simulator and harness scripts: shellcheck clean"
