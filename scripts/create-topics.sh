#!/usr/bin/env bash
# Usage: scripts/create-topics.sh [--bootstrap B] [--partitions N] [--replication-factor R]
#                                 [--timeout S]
#
# Creates orderpipe's topics (SPEC.md §3) if they do not exist yet, in ONE JVM (Kafka's Admin
# client, scripts/kafka/CreateTopics.java), then prints every topic of the cluster.
# Idempotent: existing topics are left as they are (like kafka-topics --create --if-not-exists).
#
#   --bootstrap B            [KAFKA_BOOTSTRAP_SERVERS, default localhost:9092]
#   --partitions N           [TOPIC_PARTITIONS, default 3]
#   --replication-factor R   [TOPIC_REPLICATION_FACTOR, default 1]; R > 1 adds
#                            min.insync.replicas=2 to every topic
#   --timeout S              seconds to reach the broker and see all leaders [default 60]
#
# Topics: orders.events, inventory.requests, inventory.responses, inventory.events,
# notifications.requests, notifications.events, notifications.dlq, dlq.resolutions (compacted),
# and <topic>.dlq for every topic consumed by a service other than notification. DLQ topics
# keep records 30 days (retention.ms=2592000000).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# shellcheck source=lib/kafka-env.sh
source "$SCRIPT_DIR/lib/kafka-env.sh"

die() {
  echo "create-topics.sh: error: $*" >&2
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}"
partitions="${TOPIC_PARTITIONS:-3}"
rf="${TOPIC_REPLICATION_FACTOR:-1}"
timeout_s=60

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bootstrap | --bootstrap-server) need_arg "$@"; bootstrap="$2"; shift 2 ;;
    --bootstrap=* | --bootstrap-server=*) bootstrap="${1#*=}"; shift ;;
    --partitions) need_arg "$@"; partitions="$2"; shift 2 ;;
    --partitions=*) partitions="${1#*=}"; shift ;;
    --replication-factor) need_arg "$@"; rf="$2"; shift 2 ;;
    --replication-factor=*) rf="${1#*=}"; shift ;;
    --timeout) need_arg "$@"; timeout_s="$2"; shift 2 ;;
    --timeout=*) timeout_s="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "bad partition count: $partitions"
[[ "$rf" =~ ^[1-9][0-9]*$ ]] || die "bad replication factor: $rf"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "bad timeout: $timeout_s"

THIRTY_DAYS_MS=2592000000
common=()
if ((rf > 1)); then
  common+=(min.insync.replicas=2)
fi

MAIN_TOPICS=(
  orders.events
  inventory.requests
  inventory.responses
  inventory.events
  notifications.requests
  notifications.events
)
# <topic>.dlq for each topic read by a service other than notification-service
# (notification-service dead-letters into notifications.dlq; analytics reads notifications.dlq
# and dlq.resolutions).
DLQ_TOPICS=(
  orders.events.dlq
  inventory.requests.dlq
  inventory.responses.dlq
  inventory.events.dlq
  notifications.events.dlq
  dlq.resolutions.dlq
  notifications.dlq.dlq
)

specs() {
  local t
  for t in "${MAIN_TOPICS[@]}"; do
    echo "$t $partitions $rf ${common[*]}"
  done
  echo "notifications.dlq $partitions $rf retention.ms=$THIRTY_DAYS_MS ${common[*]}"
  echo "dlq.resolutions $partitions $rf cleanup.policy=compact ${common[*]}"
  for t in "${DLQ_TOPICS[@]}"; do
    echo "$t $partitions $rf retention.ms=$THIRTY_DAYS_MS ${common[*]}"
  done
}

start_ms="$(date +%s%3N)"
classes="$(kafka_helper_classes)"
echo "create-topics.sh: ensuring $((${#MAIN_TOPICS[@]} + 2 + ${#DLQ_TOPICS[@]})) topics on $bootstrap" \
  "(partitions=$partitions, replication-factor=$rf)"
KAFKA_EXTRA_CLASSPATH="$classes" kafka_java CreateTopics "$bootstrap" "$((timeout_s * 1000))" < <(specs)
echo "create-topics.sh: done in $(($(date +%s%3N) - start_ms)) ms"
