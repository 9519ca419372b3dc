#!/usr/bin/env bash
# Usage: scripts/create-topics.sh [--bootstrap B] [--prefix P] [--partitions N]
#                                 [--replication-factor R] [--timeout S]
#
# Creates orderpipe's topics if they do not exist yet, with build/tools/orderpipe-topics, which
# takes the names and settings from the event contract in code (libs/contract): the main topics,
# notifications.dlq, the compacted dlq.resolutions and the <topic>.dlq topics (30-day retention).
# Idempotent: existing topics are left as they are. Needs the build (scripts/build.sh).
#
#   --bootstrap B            [KAFKA_BOOTSTRAP_SERVERS, default localhost:9092]
#   --prefix P               [TOPIC_PREFIX, default none]
#   --partitions N           [TOPIC_PARTITIONS, default 3]
#   --replication-factor R   [TOPIC_REPLICATION_FACTOR, default 1]; R > 1 adds
#                            min.insync.replicas=2 to every topic
#   --timeout S              seconds to reach the broker and see every topic [default 60]
#
# The list of names: build/tools/orderpipe-topics list
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
TOOL="${BUILD_DIR:-$ROOT/build}/tools/orderpipe-topics"

die() {
  echo "create-topics.sh: error: $*" >&2
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}"
prefix="${TOPIC_PREFIX:-}"
partitions="${TOPIC_PARTITIONS:-3}"
rf="${TOPIC_REPLICATION_FACTOR:-1}"
timeout_s=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bootstrap | --bootstrap-server) [[ $# -ge 2 ]] || die "$1 needs a value"; bootstrap="$2"; shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || die "$1 needs a value"; prefix="$2"; shift 2 ;;
    --partitions) [[ $# -ge 2 ]] || die "$1 needs a value"; partitions="$2"; shift 2 ;;
    --replication-factor) [[ $# -ge 2 ]] || die "$1 needs a value"; rf="$2"; shift 2 ;;
    --timeout) [[ $# -ge 2 ]] || die "$1 needs a value"; timeout_s="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
args=(--bootstrap "$bootstrap" --partitions "$partitions" --replication-factor "$rf"
  --timeout "$timeout_s")
[[ -n "$prefix" ]] && args+=(--prefix "$prefix")
[[ -x "$TOOL" ]] || die "$TOOL is not built yet: run scripts/build.sh first"
exec "$TOOL" create "${args[@]}"
