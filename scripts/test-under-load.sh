#!/usr/bin/env bash
# Usage: scripts/test-under-load.sh [--runs N] [--hogs N] [ctest arguments...]
#
# The README's test command (scripts/test.sh) run N times in a row while stress-ng keeps the
# machine's cores busy with work of its own, as a shared CI machine is. A test that passes only on
# a quiet machine fails here. stress-ng (Debian) comes from scripts/packages/build.txt, installed
# by scripts/setup.sh.
#
#   --runs N    how many times to run the suite [5]
#   --hogs N    CPU hogs (stress-ng --cpu N), each a busy loop at normal priority [every core]
#   ctest arguments are passed on to every run (e.g. -L kafka, -R broker_down)
#
# Each run's whole output goes to ${BUILD_DIR:-build}/under-load/run-K.log; one line per run and a
# summary are printed. Exit status: 0 when every run passed, 1 otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"

runs=5
hogs="$(nproc)"
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "test-under-load: --runs needs a positive number" >&2; exit 2; }
      runs="$2"; shift 2 ;;
    --hogs) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "test-under-load: --hogs needs a positive number" >&2; exit 2; }
      hogs="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done

# Install and build first, quietly loaded or not: what is measured is the tests.
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" -DORDERPIPE_WERROR=ON
command -v stress-ng >/dev/null || { echo "test-under-load: stress-ng is missing (scripts/setup.sh installs it)" >&2; exit 1; }

logs="${BUILD_DIR:-$ROOT/build}/under-load"
mkdir -p "$logs"
stress-ng --cpu "$hogs" --timeout 0 --quiet &
hog_pid=$!
trap 'kill "$hog_pid" 2>/dev/null || true; wait "$hog_pid" 2>/dev/null || true' EXIT
echo "test-under-load: $hogs CPU hogs (stress-ng pid $hog_pid) on $(nproc) cores; $runs runs of scripts/test.sh ${ctest_args[*]}"

failed=0
for ((k = 1; k <= runs; k++)); do
  start=$SECONDS
  if "$ROOT/scripts/test.sh" "${ctest_args[@]}" >"$logs/run-$k.log" 2>&1; then
    verdict="passed"
  else
    verdict="FAILED"
    failed=$((failed + 1))
  fi
  summary="$(grep -E '^[0-9]+% tests passed' "$logs/run-$k.log" | tail -n1 || true)"
  echo "test-under-load: run $k of $runs: $verdict in $((SECONDS - start)) s: ${summary:-no ctest summary} ($logs/run-$k.log)"
  if [[ "$verdict" == FAILED ]]; then
    grep -E '\*\*\*Failed|Timeout|\(Failed\)' "$logs/run-$k.log" | sed 's/^/    /' || true
  fi
done
echo "test-under-load: $((runs - failed)) of $runs runs passed"
((failed == 0))
