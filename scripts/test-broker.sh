#!/usr/bin/env bash
# Usage: scripts/test-broker.sh start|stop <state-dir>
#
# Broker for the CTest fixtures (FIXTURES_SETUP / FIXTURES_CLEANUP).
#   start  writes the bootstrap string to <state-dir>/bootstrap. If ORDERPIPE_TEST_BOOTSTRAP is
#          set, that is all it does (the tests then use that broker, whose topics must exist).
#          Otherwise it starts a private broker on a free port with its data in
#          <state-dir>/kafka (scripts/kafka.sh start --port auto; stale data of a broker
#          that no longer runs is wiped first) and creates the topics (scripts/create-topics.sh).
#          Already running there: reused.
#   stop   stops that broker and removes <state-dir>/kafka and <state-dir>/bootstrap; does
#          nothing when ORDERPIPE_TEST_BOOTSTRAP is set.
# Tests read the bootstrap with e.g. $(cat <state-dir>/bootstrap).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

if [[ $# -ne 2 || -z "$2" ]]; then
  usage >&2
  exit 2
fi
cmd="$1"
state_dir="$2"

case "$cmd" in
  start)
    mkdir -p "$state_dir"
    if [[ -n "${ORDERPIPE_TEST_BOOTSTRAP:-}" ]]; then
      echo "$ORDERPIPE_TEST_BOOTSTRAP" >"$state_dir/bootstrap"
      echo "test-broker.sh: using ORDERPIPE_TEST_BOOTSTRAP=$ORDERPIPE_TEST_BOOTSTRAP"
      exit 0
    fi
    rm -f "$state_dir/bootstrap"
    # Left over from a run that never stopped its broker: start from empty storage.
    if [[ -d "$state_dir/kafka" ]] &&
      ! "$SCRIPT_DIR/kafka.sh" status --data-dir "$state_dir/kafka" >/dev/null; then
      rm -rf "${state_dir:?}/kafka"
    fi
    "$SCRIPT_DIR/kafka.sh" start --port auto --data-dir "$state_dir/kafka" \
      --bootstrap-file "$state_dir/bootstrap"
    bootstrap="$(cat "$state_dir/bootstrap")"
    if ! "$SCRIPT_DIR/create-topics.sh" --bootstrap "$bootstrap"; then
      echo "test-broker.sh: error: creating the topics on $bootstrap failed; stopping it" >&2
      "$SCRIPT_DIR/kafka.sh" stop --data-dir "$state_dir/kafka" || true
      rm -f "$state_dir/bootstrap"
      exit 1
    fi
    echo "test-broker.sh: broker ready at $bootstrap"
    ;;
  stop)
    if [[ -n "${ORDERPIPE_TEST_BOOTSTRAP:-}" ]]; then
      exit 0
    fi
    "$SCRIPT_DIR/kafka.sh" stop --data-dir "$state_dir/kafka"
    rm -rf "${state_dir:?}/kafka"
    rm -f "$state_dir/bootstrap"
    rmdir "$state_dir" 2>/dev/null || true
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
