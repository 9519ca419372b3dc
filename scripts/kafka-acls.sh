#!/usr/bin/env bash
# Usage: scripts/kafka-acls.sh --bootstrap-server HOST:PORT --command-config FILE
#                              [--prefix TOPIC_PREFIX] [--print]
#
# Grants each orderpipe principal exactly what it uses (docs/SECURITY.md), derived from the
# topics table of docs/CONTRACT.md: Read on the topics it consumes, Write on the topics it
# produces to (its DLQs included), Read on its consumer group and Write on its transactional ids
# (both prefixed with its name: `<service>-<INSTANCE_ID>[-saga]`). Principals are User:<service>
# (SCRAM user names), User:dlqctl and User:orderpipe-console (the console: it reads every topic
# and replays and discards dead letters with dlqctl's code, hence dlqctl's transactional ids).
# Describe comes with Read and Write.
#   --command-config  an admin client's properties (security.protocol, sasl.jaas.config, ...)
#   --prefix          TOPIC_PREFIX of the services (default: none)
#   --print           print the kafka-acls commands instead of running them
# Idempotent: adding an ACL that exists changes nothing. Runs Kafka's AclCommand from the jars
# of scripts/setup.sh (scripts/bin/kafka-acls).
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"

bootstrap="" config="" prefix="" print=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bootstrap-server) bootstrap="$2"; shift 2 ;;
    --command-config) config="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --print) print=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kafka-acls.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$bootstrap" ]] || { echo "kafka-acls.sh: --bootstrap-server is required" >&2; exit 2; }
[[ $print == 1 || -n "$config" ]] || { echo "kafka-acls.sh: --command-config is required" >&2; exit 2; }

DLQS="notifications.dlq orders.events.dlq inventory.requests.dlq inventory.responses.dlq inventory.events.dlq notifications.events.dlq dlq.resolutions.dlq orders.commands.dlq"
# Every topic of the contract (libs/contract/src/topics.cpp): the main ones and the DLQs.
ALL_TOPICS="orders.events inventory.requests inventory.responses inventory.events notifications.requests notifications.events orders.commands dlq.resolutions $DLQS"
# What a replay or a discard writes: the resolutions ledger, and the topics a DLQ's records came
# from (a replay writes a record back to its dlq.original_topic).
DLQ_WRITES="dlq.resolutions notifications.requests orders.events inventory.requests inventory.responses inventory.events notifications.events orders.commands"
# principal | topics it reads | topics it writes (DLQs included) [| its transactional id prefix,
# when not "<principal>-"]. dlqctl works on every DLQ and replays a record to the topic it came
# from; it writes the resolutions ledger. The console reads every topic (an order's timeline,
# the DLQ views) and acts on the DLQs through dlqctl's code and transactional ids
# (`dlqctl-<topic>`, which fences a dlqctl or another console acting on the same DLQ).
ACLS=(
  # orders.commands: a customer cancel taken by one instance for the instance owning the order
  "order-service|orders.events inventory.responses orders.commands|orders.events inventory.requests notifications.requests inventory.responses.dlq orders.commands orders.commands.dlq"
  "inventory-service|inventory.requests|inventory.responses inventory.events inventory.requests.dlq"
  "notification-service|notifications.requests|notifications.events notifications.dlq"
  # analytics counts what lands in every DLQ, and dead-letters poison of the topics it reads;
  # it reads the saga's requests, responses and commands for the per-order index only
  # (never of a DLQ)
  "analytics-service|orders.events inventory.events notifications.events dlq.resolutions inventory.requests inventory.responses notifications.requests orders.commands $DLQS|orders.events.dlq inventory.events.dlq notifications.events.dlq dlq.resolutions.dlq"
  "dlqctl|dlq.resolutions $DLQS|$DLQ_WRITES"
  "orderpipe-console|$ALL_TOPICS|$DLQ_WRITES|dlqctl-"
)
# Readers that assign partitions themselves and never join a consumer group: no group ACL.
NO_GROUP="dlqctl orderpipe-console"

run() {
  local -a cmd=("$ROOT/scripts/bin/kafka-acls" --bootstrap-server "$bootstrap")
  [[ -n "$config" ]] && cmd+=(--command-config "$config")
  cmd+=(--add --force "$@")
  if ((print)); then
    echo "${cmd[*]}"
  else
    "${cmd[@]}" >/dev/null
  fi
}

for entry in "${ACLS[@]}"; do
  IFS='|' read -r who reads writes txn <<<"$entry"
  txn="${txn:-$who-}"
  principal="User:$who"
  topic_args() { local t; for t in $1; do printf -- '--topic\n%s\n' "$prefix$t"; done; }
  mapfile -t read_topics < <(topic_args "$reads")
  mapfile -t write_topics < <(topic_args "$writes")
  run --allow-principal "$principal" --operation Read --operation Describe "${read_topics[@]}"
  run --allow-principal "$principal" --operation Write --operation Describe "${write_topics[@]}"
  # Its consumer group (dlqctl's and the console's readers never join one) and its
  # transactional ids.
  group="$who*"
  if [[ " $NO_GROUP " != *" $who "* ]]; then
    run --allow-principal "$principal" --operation Read --operation Describe \
      --resource-pattern-type prefixed --group "$who"
  else
    group="none"
  fi
  run --allow-principal "$principal" --operation Write --operation Describe \
    --resource-pattern-type prefixed --transactional-id "$txn"
  ((print)) || echo "kafka-acls.sh: $principal: read [$reads], write [$writes], group $group, transactional ids $txn*"
done
