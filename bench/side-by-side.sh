#!/usr/bin/env bash
# Usage: bench/side-by-side.sh [--discard-data] [orderpipe-bench options...]
#
# Both backends in one run, on this machine, one after the other: each stack started fresh by
# scripts/run.sh — SQLite (one instance of each service), then --postgres (PostgreSQL 15, two
# instances of every service, HAProxy in front) — loaded by the same orderpipe-bench command,
# then stopped; at the end the two results side by side (orderpipe-bench --compare), a Markdown
# table for docs/BENCHMARKS.md. Results go to bench-results/<UTC time>/{sqlite,postgres}.json.
#
# Each stack starts from an empty .data/ (a backlog or a big database left from an earlier run
# would change the figures), so this script deletes .data/ — the local stack's broker data,
# databases and logs. It refuses to unless .data/ is absent or --discard-data is given.
#
# Default load: --connections 256 --warmup 20 --duration 30 (docs/BENCHMARKS.md); options given
# replace it, e.g. `bench/side-by-side.sh --discard-data --rate 500 --duration 60`.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DATA="$ROOT/.data"

discard=0
args=()
for arg in "$@"; do
  case "$arg" in
    --discard-data) discard=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) args+=("$arg") ;;
  esac
done
((${#args[@]})) || args=(--connections 256 --warmup 20 --duration 30)

if [[ -e "$DATA" ]] && ((!discard)); then
  echo "side-by-side: $DATA exists (the local stack's data); pass --discard-data to delete it" >&2
  echo "side-by-side: and start each stack from nothing" >&2
  exit 2
fi

BENCH="$ROOT/build/bench/orderpipe-bench"
out="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

stop_stack() { "$ROOT/scripts/run.sh" stop >/dev/null 2>&1 || true; }
trap stop_stack EXIT

for backend in sqlite postgres; do
  stop_stack
  rm -rf "$DATA"
  flags=()
  [[ "$backend" == postgres ]] && flags=(--postgres)
  echo "side-by-side: starting the $backend stack (scripts/run.sh ${flags[*]})" >&2
  "$ROOT/scripts/run.sh" "${flags[@]}" >"$out/run-$backend.log" 2>&1 || {
    echo "side-by-side: scripts/run.sh ${flags[*]} failed; its output: $out/run-$backend.log" >&2
    exit 1
  }
  echo "side-by-side: orderpipe-bench ${args[*]}" >&2
  "$BENCH" "${args[@]}" --label "$backend" --json "$out/$backend.json" | tee "$out/$backend.txt"
done
stop_stack

{
  echo "orderpipe-bench ${args[*]}, on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo "at $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  "$BENCH" --compare "$out/sqlite.json" "$out/postgres.json"
} | tee "$out/side-by-side.md"
echo "side-by-side: results in $out" >&2
