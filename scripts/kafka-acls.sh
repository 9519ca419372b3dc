#!/usr/bin/env bash
# Usage: scripts/kafka-acls.sh --bootstrap-server HOST:PORT --command-config FILE
#                              [--prefix TOPIC_PREFIX] [--print]
#
# Grants each orderpipe principal exactly what it uses (docs/SECURITY.md), derived from the
# topics table of docs/CONTRACT.md: Read on the topics it consumes, Write on the topics it
# produces to (its DLQs included), Read on its consumer group and Write on its transactional ids
# (both prefixed with its name: `<service>-<INSTANCE_ID>[-saga]`). Principals are User:<service>
# (SCRAM user names) and User:dlqctl. Describe comes with Read and Write.
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
# principal | topics it reads | topics it writes (DLQs included). dlqctl works on every DLQ and
# replays a record to the topic it came from; it writes the resolutions ledger.
ACLS=(
  # orders.commands: a customer cancel taken by one instance for the instance owning the order
  "order-service|orders.events inventory.responses orders.commands|orders.events inventory.requests notifications.requests inventory.responses.dlq orders.commands orders.commands.dlq"
  "inventory-service|inventory.requests|inventory.responses inventory.events inventory.requests.dlq"
  "notification-service|notifications.requests|notifications.events notifications.dlq"
  # analytics counts what lands in every DLQ, and dead-letters poison of the topics it reads;
  # it reads the saga's requests, responses and commands for the per-order index only
  # (never of a DLQ)
  "analytics-service|orders.events inventory.events notifications.events dlq.resolutions inventory.requests inventory.responses notifications.requests orders.commands $DLQS|orders.events.dlq inventory.events.dlq notifications.events.dlq dlq.resolutions.dlq"
  "dlqctl|dlq.resolutions $DLQS|dlq.resolutions notifications.requests orders.events inventory.requests inventory.responses inventory.events notifications.events orders.commands"
)

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
  IFS='|' read -r who reads writes <<<"$entry"
  principal="User:$who"
  topic_args() { local t; for t in $1; do printf -- '--topic\n%s\n' "$prefix$t"; done; }
  mapfile -t read_topics < <(topic_args "$reads")
  mapfile -t write_topics < <(topic_args "$writes")
  run --allow-principal "$principal" --operation Read --operation Describe "${read_topics[@]}"
  run --allow-principal "$principal" --operation Write --operation Describe "${write_topics[@]}"
  # Its consumer group (dlqctl's reader never joins one) and its transactional ids.
  if [[ "$who" != dlqctl ]]; then
    run --allow-principal "$principal" --operation Read --operation Describe \
      --resource-pattern-type prefixed --group "$who"
  fi
  run --allow-principal "$principal" --operation Write --operation Describe \
    --resource-pattern-type prefixed --transactional-id "$who-"
  ((print)) || echo "kafka-acls.sh: $principal: read [$reads], write [$writes], group $who*, transactional ids $who-*"
done
