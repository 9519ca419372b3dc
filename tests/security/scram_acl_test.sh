#!/usr/bin/env bash
# Usage: tests/security/scram_acl_test.sh BUILD_DIR
#
# The whole pipeline on a secured Apache Kafka broker (docs/SECURITY.md), the way it is run in
# production: a SASL_SSL listener (SCRAM-SHA-512 over TLS, with a CA this test makes with
# openssl), the StandardAuthorizer with no access unless an ACL grants it, and one principal per
# service holding exactly the ACLs of its topics, its consumer group and its transactional ids
# (scripts/kafka-acls.sh, derived from docs/CONTRACT.md "Topics"). It checks that
#   1. every service runs with its own credentials (given as KAFKA_* variables): an order is
#      confirmed, its email sent and counted by analytics, and orderpipe-check finds no
#      violation reading the topics as the admin; dlqctl works as its own principal too;
#   2. a service started with credentials that have no ACL for its topics is refused and says
#      so: it stays up (no crash loop), /readyz is 503 naming the topics it is not authorized
#      for, and its log says which ACLs are missing; likewise one whose consumer group has
#      no ACL (GROUP_PREFIX=rogue-), named under its loop's check.
# It starts its own broker on free ports and stops everything it started. ORDERPIPE_KEEP=1
# keeps the work directory (certificates, broker and service logs).
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
BUILD="$(realpath "${1:?usage: $0 BUILD_DIR}")"
# shellcheck source=../../scripts/lib/kafka-env.sh
source "$ROOT/scripts/lib/kafka-env.sh"
kafka_require_jars

WORK="$(mktemp -d /tmp/orderpipe-security.XXXXXX)"
PIDS=()
BROKER_PID=""
say() { echo "security-test: $*"; }
fail() {
  echo "security-test: FAILED: $*" >&2
  for f in "$WORK"/*.log; do
    [[ -s "$f" ]] || continue
    echo "---- last lines of $f ----" >&2
    tail -n 15 "$f" >&2
  done
  exit 1
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$BROKER_PID" ]]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  if [[ "${ORDERPIPE_KEEP:-0}" == 1 ]]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds or time is up.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within ${seconds}s"
    sleep 0.2
  done
}

# --- 1. a CA and the broker's certificate ------------------------------------------------------
say "making a CA and a broker certificate in $WORK"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orderpipe test CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$WORK/broker.key" -out "$WORK/broker.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -days 2 -in "$WORK/broker.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -extfile "$WORK/san.ext" -out "$WORK/broker.crt" 2>/dev/null
# A PEM key store (KIP-651): the private key (PKCS#8), then the certificate chain.
cat "$WORK/broker.key" "$WORK/broker.crt" "$WORK/ca.pem" >"$WORK/broker-keystore.pem"

# --- 2. the broker: SASL_SSL for clients and brokers, ACLs enforced -----------------------------
PORT="$(free_port)"
CPORT="$(free_port)"
ADMIN_PASSWORD="admin-$RANDOM$RANDOM"
cat >"$WORK/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=SASL_SSL://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=SASL_SSL://127.0.0.1:$PORT
# The KRaft controller listener cannot use SCRAM (its credentials live in the metadata it
# serves); here it listens on the loopback only. A production cluster puts it on a private
# network with mTLS (docs/SECURITY.md).
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$WORK/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$WORK/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# admin: the broker itself and the operator; ANONYMOUS: the controller listener (loopback).
super.users=User:admin;User:ANONYMOUS
log.dirs=$WORK/kafka-logs
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

SERVICES=(order-service inventory-service notification-service analytics-service)
declare -A PASSWORD=()
scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]")
for s in "${SERVICES[@]}" dlqctl; do
  PASSWORD[$s]="$s-$RANDOM$RANDOM"
  scram+=(--add-scram "SCRAM-SHA-512=[name=$s,password=${PASSWORD[$s]}]")
done
say "formatting the broker's storage with SCRAM credentials for admin and ${#PASSWORD[@]} principals"
"$ROOT/scripts/bin/kafka-storage" format --ignore-formatted -t "$("$ROOT/scripts/bin/kafka-storage" random-uuid)" \
  -c "$WORK/server.properties" "${scram[@]}" >"$WORK/format.log" 2>&1 || fail "kafka-storage format"

say "starting the broker (SASL_SSL on 127.0.0.1:$PORT)"
KAFKA_HEAP_OPTS="-Xmx512m -Xms128m" \
  KAFKA_JVM_PERFORMANCE_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true" \
  KAFKA_LOG4J_OPTS="-Dlog4j.configuration=file:$ROOT/scripts/kafka/log4j.properties -Dkafka.logs.dir=$WORK" \
  bash -c 'source "$1/scripts/lib/kafka-env.sh" && kafka_exec kafka.Kafka "$2"' _ "$ROOT" \
  "$WORK/server.properties" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$! # the JVM itself (kafka_exec execs it), so cleanup stops the broker, not a shell

BOOTSTRAP="127.0.0.1:$PORT"
# The client settings of principal $1, as the services take them: KAFKA_* variables.
client_env() {
  local user="$1" password="$2"
  echo "KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP KAFKA_SECURITY_PROTOCOL=SASL_SSL" \
    "KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=$user KAFKA_SASL_PASSWORD=$password" \
    "KAFKA_SSL_CA_LOCATION=$WORK/ca.pem"
}
ADMIN_ENV="$(client_env admin "$ADMIN_PASSWORD")"

# --- 3. topics and ACLs, as the admin -------------------------------------------------------------
say "creating the topics as the admin (orderpipe-topics with KAFKA_* settings)"
wait_for "the broker answers over SASL_SSL" 90 \
  env $ADMIN_ENV "$BUILD/tools/orderpipe-topics" create --timeout 5
cat >"$WORK/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$WORK/ca.pem
EOF
say "granting each service the ACLs of its topics, group and transactional ids"
"$ROOT/scripts/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" \
  --command-config "$WORK/admin.properties" >"$WORK/acls.log" 2>&1 || fail "kafka-acls.sh"

# --- 4. the pipeline, each service with its own credentials --------------------------------------
cat >"$WORK/seed.json" <<'EOF'
[{"sku":"LAPTOP-001","name":"Laptop","unit_price":"999.99","stock":50},
 {"sku":"MOUSE-001","name":"Mouse","unit_price":"29.99","stock":200}]
EOF
PROVIDER_PORT="$(free_port)"
declare -A HTTP=()
start() {  # start NAME BINARY PORT ENV...
  local name="$1" binary="$2" port="$3"
  shift 3
  mkdir -p "$WORK/$name"
  env "$@" HTTP_PORT="$port" DATA_DIR="$WORK/$name" LOG_LEVEL=info INVENTORY_SEED="$WORK/seed.json" \
    NOTIFY_EMAIL_URL="http://127.0.0.1:$PROVIDER_PORT/send" SHUTDOWN_TIMEOUT=10s \
    "$binary" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
start fake-email-provider "$BUILD/tools/fake-email-provider" "$PROVIDER_PORT"
for s in "${SERVICES[@]}"; do
  HTTP[$s]="$(free_port)"
  # shellcheck disable=SC2046
  start "$s" "$BUILD/$s/$s" "${HTTP[$s]}" $(client_env "$s" "${PASSWORD[$s]}")
done
for s in "${SERVICES[@]}"; do
  wait_for "$s ready with its own credentials" 90 curl -fsS "http://127.0.0.1:${HTTP[$s]}/readyz"
  say "$s ready as User:$s"
done

ORDER='{"customer_id":"c-42","customer_email":"ana@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"}]}'
ORDER_ID="$(curl -fsS -X POST "http://127.0.0.1:${HTTP[order-service]}/orders" \
  -H 'Content-Type: application/json' -d "$ORDER" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["order_id"])')" || fail "POST /orders"
STATUS="$(curl -fsS "http://127.0.0.1:${HTTP[order-service]}/orders/$ORDER_ID?wait=terminal&timeout_ms=30000" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" || fail "GET /orders/$ORDER_ID"
[[ "$STATUS" == CONFIRMED ]] || fail "order $ORDER_ID is $STATUS, expected CONFIRMED"
say "order $ORDER_ID confirmed"
email_sent() { curl -fsS "http://127.0.0.1:$PROVIDER_PORT/sent" | grep -q "$ORDER_ID"; }
wait_for "the confirmation email of $ORDER_ID" 30 email_sent
counted() {
  curl -fsS "http://127.0.0.1:${HTTP[analytics-service]}/metrics" |
    grep -Eq '^orders_confirmed_total(\{[^}]*\})? [1-9]'
}
wait_for "analytics counts the confirmed order" 30 counted
say "email sent and the order counted by analytics"

say "orderpipe-check, reading every topic as the admin"
# shellcheck disable=SC2086
env $ADMIN_ENV "$BUILD/tools/check/orderpipe-check" --bootstrap "$BOOTSTRAP" \
  --order-url "http://127.0.0.1:${HTTP[order-service]}" \
  --inventory-url "http://127.0.0.1:${HTTP[inventory-service]}" \
  --analytics-url "http://127.0.0.1:${HTTP[analytics-service]}" \
  --provider-url "http://127.0.0.1:$PROVIDER_PORT" --catalog "$WORK/seed.json" --wait 60 \
  >"$WORK/check.log" 2>&1 || fail "orderpipe-check found violations (see check.log)"

say "dlqctl as User:dlqctl"
# shellcheck disable=SC2046
env $(client_env dlqctl "${PASSWORD[dlqctl]}") "$BUILD/tools/dlqctl" stats >"$WORK/dlqctl.log" 2>&1 ||
  fail "dlqctl stats with its own credentials (see dlqctl.log)"

# --- 5. credentials without ACLs for the service's topics ----------------------------------------
say "an inventory-service with the notification-service's credentials"
WRONG_PORT="$(free_port)"
# shellcheck disable=SC2046
start inventory-wrong "$BUILD/inventory-service/inventory-service" "$WRONG_PORT" \
  INSTANCE_ID=wrong $(client_env notification-service "${PASSWORD[notification-service]}")
WRONG_PID="${PIDS[-1]}"
refused() {
  local body
  body="$(curl -sS "http://127.0.0.1:$WRONG_PORT/readyz")" || return 1
  [[ "$body" == *"not authorized"* && "$body" == *inventory.requests* ]]
}
wait_for "/readyz names the topics it is not authorized for" 60 refused
curl -sS "http://127.0.0.1:$WRONG_PORT/readyz" >"$WORK/refused-readyz.json"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WRONG_PORT/readyz")"
[[ "$code" == 503 ]] || fail "/readyz answered $code, expected 503"
grep -q '"not authorized to use topics' "$WORK/inventory-wrong.log" ||
  fail "its log does not say which ACLs are missing"
# Still there a while later: refused, not crashing (a supervisor would restart it in a loop).
for _ in $(seq 1 10); do
  curl -fsS "http://127.0.0.1:$WRONG_PORT/livez" >/dev/null || fail "it stopped answering /livez"
  kill -0 "$WRONG_PID" 2>/dev/null || fail "it exited"
  sleep 0.5
done
say "refused and says so: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checks"]["topics"])' "$WORK/refused-readyz.json")"

say "a notification-service whose consumer group has no ACL (GROUP_PREFIX=rogue-)"
ROGUE_PORT="$(free_port)"
# shellcheck disable=SC2046
start notification-rogue "$BUILD/notification-service/notification-service" "$ROGUE_PORT" \
  INSTANCE_ID=rogue GROUP_PREFIX=rogue- \
  $(client_env notification-service "${PASSWORD[notification-service]}")
ROGUE_PID="${PIDS[-1]}"
group_refused() {
  local body code
  body="$(curl -sS "http://127.0.0.1:$ROGUE_PORT/readyz")" || return 1
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ROGUE_PORT/readyz")"
  [[ "$code" == 503 && "$body" == *"roup authorization failed"* && "$body" == *rogue-notification-service* ]]
}
wait_for "/readyz says the group is not authorized" 60 group_refused
for _ in $(seq 1 6); do
  kill -0 "$ROGUE_PID" 2>/dev/null || fail "the notification-service without a group ACL exited"
  sleep 0.5
done
grep -q '"the broker refused this service'"'"'s principal"' "$WORK/notification-rogue.log" ||
  fail "its log does not say the group was refused"
say "refused and says so: $(curl -sS "http://127.0.0.1:$ROGUE_PORT/readyz" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["detail"])')"

# The pipeline did not notice.
curl -fsS "http://127.0.0.1:${HTTP[inventory-service]}/readyz" >/dev/null || fail "inventory-service not ready"
say "passed"
