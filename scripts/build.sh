#!/usr/bin/env bash
# Usage: scripts/build.sh [extra cmake -D options...]
#
# Configures and builds everything into build/ (Ninja, ccache, -j2 by default: BUILD_JOBS).
# Needs the packages from scripts/setup.sh; downloads nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
generator=()
if command -v ninja >/dev/null 2>&1 && [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  generator=(-G Ninja)
fi
cmake -S "$ROOT" -B "$BUILD_DIR" "${generator[@]}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "${BUILD_JOBS:-2}"
