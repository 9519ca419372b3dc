#!/usr/bin/env bash
# Usage: scripts/test-postgres.sh start|stop <state-dir>
#
# PostgreSQL server for the CTest fixtures (FIXTURES_SETUP / FIXTURES_CLEANUP), as
# scripts/test-broker.sh is for the broker.
#   start  writes a database URL to <state-dir>/url. If ORDERPIPE_TEST_DATABASE_URL is set, that
#          is all it does (the tests then use that database; each test works in its own schema
#          or database it creates). Otherwise it starts a private server on a free port with its
#          data in <state-dir>/postgres (scripts/postgres.sh; stale data of a server that no
#          longer runs is wiped first).
#   stop   stops that server and removes <state-dir>/postgres and <state-dir>/url; does nothing
#          when ORDERPIPE_TEST_DATABASE_URL is set.
# Tests read the URL with e.g. $(cat <state-dir>/url); fault tests kill and restart the server
# with scripts/postgres.sh kill|start --data-dir <state-dir>/postgres.
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
    if [[ -n "${ORDERPIPE_TEST_DATABASE_URL:-}" ]]; then
      echo "$ORDERPIPE_TEST_DATABASE_URL" >"$state_dir/url"
      echo "test-postgres.sh: using ORDERPIPE_TEST_DATABASE_URL"
      exit 0
    fi
    rm -f "$state_dir/url"
    if [[ -d "$state_dir/postgres" ]] &&
      ! "$SCRIPT_DIR/postgres.sh" status --data-dir "$state_dir/postgres"; then
      rm -rf "${state_dir:?}/postgres"
    fi
    "$SCRIPT_DIR/postgres.sh" start --data-dir "$state_dir/postgres" --url-file "$state_dir/url"
    echo "test-postgres.sh: server ready at $(cat "$state_dir/url")"
    ;;
  stop)
    [[ -z "${ORDERPIPE_TEST_DATABASE_URL:-}" ]] || exit 0
    if [[ -d "$state_dir/postgres" ]]; then
      "$SCRIPT_DIR/postgres.sh" stop --data-dir "$state_dir/postgres" || true
    fi
    rm -rf "${state_dir:?}/postgres"
    rm -f "$state_dir/url"
    rmdir "$state_dir" 2>/dev/null || true
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
