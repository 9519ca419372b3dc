#!/usr/bin/env bash
# Usage: scripts/test.sh [ctest arguments...]
#
# Runs every test on this machine: installs what is missing (scripts/setup.sh), builds with
# warnings as errors, then runs ctest: unit tests, and integration tests against a real Kafka
# broker that the `kafka_broker` fixture starts on a free port and stops afterwards (set
# ORDERPIPE_TEST_BOOTSTRAP=host:port to use a running broker instead; its topics must exist).
# Examples: scripts/test.sh            scripts/test.sh -L kafka          scripts/test.sh -R unit
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" -DORDERPIPE_WERROR=ON
cd "${BUILD_DIR:-$ROOT/build}"
ctest --output-on-failure --timeout 900 "$@"
