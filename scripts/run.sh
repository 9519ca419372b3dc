#!/usr/bin/env bash
# Usage: scripts/run.sh [start|stop|status] [--postgres]
#
# Runs orderpipe on this machine: installs what is missing (scripts/setup.sh), builds, starts a
# local Kafka broker on localhost:9092 (scripts/kafka.sh), creates the topics, then starts the
# services in the background and waits until each answers /readyz.
#   start   (default) everything above; idempotent: running services are left alone
#   stop    stops the services (and HAProxy, PostgreSQL), then the broker
#   status  prints what runs
# --postgres  scaled out: a local PostgreSQL 15 (scripts/postgres.sh, one database per service)
#             and TWO instances of every service sharing it (DATABASE_URL), each on its own
#             port (order-service-1 on :8180, order-service-2 on :8280, inventory :8181/:8281,
#             notification :8182/:8282, analytics :8183/:8283), with HAProxy in front on the
#             usual ports (:8080 … :8083, round robin, /readyz health checks), so the README's
#             tour works unchanged. Stop it with `scripts/run.sh stop`.
# Logs (JSON lines) and state go to .data/ (git-ignored): .data/logs/<service>.log,
# .data/<service>/ (SQLite), .data/postgres/ (--postgres), .data/pids/<service>.pid.
# Environment: KAFKA_PORT (9092), ORDER_HTTP_PORT (8080), INVENTORY_HTTP_PORT (8081),
# NOTIFICATION_HTTP_PORT (8082), ANALYTICS_HTTP_PORT (8083), PROVIDER_HTTP_PORT (8025: the fake
# email provider), POSTGRES_PORT (--postgres; default a free port, kept in .data/postgres), and
# any service variable of docs/CONFIGURATION.md (e.g. LOG_LEVEL, NOTIFY_*), passed to every
# service.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DATA="$ROOT/.data"
PORT="${KAFKA_PORT:-9092}"
BOOTSTRAP="127.0.0.1:$PORT"

command="start"
postgres=0
for arg in "$@"; do
  case "$arg" in
    start | stop | status) command="$arg" ;;
    --postgres) postgres=1 ;;
    *)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
done

# name:port:binary, in start order (stopped in reverse)
PROVIDER_PORT="${PROVIDER_HTTP_PORT:-8025}"
# service:public port:binary
BASE=(
  "inventory-service:${INVENTORY_HTTP_PORT:-8081}:inventory-service/inventory-service"
  "order-service:${ORDER_HTTP_PORT:-8080}:order-service/order-service"
  "notification-service:${NOTIFICATION_HTTP_PORT:-8082}:notification-service/notification-service"
  "analytics-service:${ANALYTICS_HTTP_PORT:-8083}:analytics-service/analytics-service"
)
# The instances this mode runs: name:port:binary.
SERVICES=("fake-email-provider:$PROVIDER_PORT:tools/fake-email-provider")
for s in "${BASE[@]}"; do
  IFS=: read -r name port binary <<<"$s"
  if ((postgres)); then
    # :8080 → :8180 and :8280, and so on.
    SERVICES+=("$name-1:$((port + 100)):$binary" "$name-2:$((port + 200)):$binary")
  else
    SERVICES+=("$name:$port:$binary")
  fi
done
# The console keeps no state: one instance, which reaches the services on their usual ports.
SERVICES+=("orderpipe-console:${CONSOLE_HTTP_PORT:-8084}:console/orderpipe-console")

say() { echo "run: $*"; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The database of a service's instances (one per service): its name.
database_of() {
  case "$1" in
    order-service*) echo orders ;;
    inventory-service*) echo inventory ;;
    notification-service*) echo notification ;;
    analytics-service*) echo analytics ;;
  esac
}

# The console's operator for this machine: a random token in .data/orderpipe-console/operator-token
# (kept across runs), and the operators file the console reads, which holds only its SHA-256.
console_operator() {
  local dir="$DATA/orderpipe-console"
  mkdir -p "$dir"
  if [[ ! -s "$dir/operator-token" ]]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/operator-token")
  fi
  printf 'operator:%s\n' "$(tr -d '\n' <"$dir/operator-token" | sha256sum | cut -d' ' -f1)" \
    >"$dir/operators"
}

start_service() {
  local name="$1" port="$2" binary="$ROOT/build/$3"
  local pidfile="$DATA/pids/$name.pid" log="$DATA/logs/$name.log"
  mkdir -p "$DATA/pids" "$DATA/logs" "$DATA/$name"
  if pid_alive "$pidfile"; then
    say "$name already running (pid $(cat "$pidfile")) on :$port"
    return
  fi
  local -a extra=()
  if ((postgres)) && [[ "$name" =~ -([0-9]+)$ ]]; then
    extra+=("INSTANCE_ID=${BASH_REMATCH[1]}" "DATABASE_URL=$DATABASE_BASE$(database_of "$name")")
  fi
  if [[ "$name" == orderpipe-console ]]; then
    console_operator
    extra+=("CONSOLE_OPERATORS_FILE=$DATA/$name/operators")
  fi
  env KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" HTTP_PORT="$port" DATA_DIR="$DATA/$name" \
    NOTIFY_EMAIL_URL="${NOTIFY_EMAIL_URL:-http://127.0.0.1:$PROVIDER_PORT/send}" "${extra[@]}" \
    nohup "$binary" >>"$log" 2>&1 &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 60))
  local probe=/readyz
  [[ "$name" == fake-email-provider ]] && probe=/sent
  until curl -fsS "http://127.0.0.1:$port$probe" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      tail -n 20 "$log" >&2
      say "$name exited; its log is $log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      curl -sS "http://127.0.0.1:$port/readyz" >&2 || true
      say "$name is not ready after 60 s; its log is $log" >&2
      exit 1
    fi
    sleep 0.2
  done
  say "$name ready on http://localhost:$port (log: $log)"
}

stop_pidfile() {
  local name="$1" pidfile="$2"
  if pid_alive "$pidfile"; then
    local pid
    pid="$(cat "$pidfile")"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    say "$name stopped"
  fi
  rm -f "$pidfile"
}

# HAProxy in front of each service's two instances, on the service's usual port.
start_haproxy() {
  local cfg="$DATA/haproxy.cfg" pidfile="$DATA/pids/haproxy.pid"
  {
    echo "global"
    echo "  maxconn 4096"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 2s"
    echo "  timeout client 150s"
    echo "  timeout server 150s  # long-polls wait up to 120 s"
    echo "  option redispatch"
    echo "  retries 2"
    for s in "${BASE[@]}"; do
      IFS=: read -r name port _ <<<"$s"
      echo "listen $name"
      echo "  bind 127.0.0.1:$port"
      echo "  balance roundrobin"
      echo "  option httpchk GET /readyz"
      echo "  server ${name}-1 127.0.0.1:$((port + 100)) check inter 1s fall 2 rise 1"
      echo "  server ${name}-2 127.0.0.1:$((port + 200)) check inter 1s fall 2 rise 1"
    done
  } >"$cfg"
  stop_pidfile haproxy "$pidfile" >/dev/null
  haproxy -f "$cfg" -D -p "$pidfile"
  say "HAProxy on :${ORDER_HTTP_PORT:-8080} … :${ANALYTICS_HTTP_PORT:-8083}, in front of both instances of each service ($cfg)"
}

case "$command" in
  start)
    "$ROOT/scripts/setup.sh"
    "$ROOT/scripts/build.sh"
    "$ROOT/scripts/kafka.sh" start --port "$PORT" >/dev/null
    say "Kafka broker on $BOOTSTRAP"
    "$ROOT/scripts/create-topics.sh" --bootstrap "$BOOTSTRAP" >/dev/null
    say "topics created"
    if ((postgres)); then
      url="$("$ROOT/scripts/postgres.sh" start --data-dir "$DATA/postgres" \
        --port "${POSTGRES_PORT:-auto}" --database orders --database inventory \
        --database notification --database analytics | tail -n 1)"
      DATABASE_BASE="${url%/*}/"
      say "PostgreSQL on ${DATABASE_BASE} (databases orders, inventory, notification, analytics)"
    fi
    for s in "${SERVICES[@]}"; do
      IFS=: read -r name port binary <<<"$s"
      start_service "$name" "$port" "$binary"
    done
    if ((postgres)); then start_haproxy; fi
    say "console: http://127.0.0.1:${CONSOLE_HTTP_PORT:-8084}/ (replay and discard need the operator token in $DATA/orderpipe-console/operator-token)"
    say "stop everything with: scripts/run.sh stop"
    ;;
  stop)
    # Whatever runs, in either mode: HAProxy first, then every service (the provider last).
    stop_pidfile haproxy "$DATA/pids/haproxy.pid"
    if [[ -d "$DATA/pids" ]]; then
      for pidfile in "$DATA"/pids/*.pid; do
        [[ -e "$pidfile" ]] || continue
        name="$(basename "$pidfile" .pid)"
        [[ "$name" == fake-email-provider ]] && continue
        stop_pidfile "$name" "$pidfile"
      done
    fi
    stop_pidfile fake-email-provider "$DATA/pids/fake-email-provider.pid"
    if [[ -d "$DATA/postgres" ]] && "$ROOT/scripts/postgres.sh" status --data-dir "$DATA/postgres"; then
      "$ROOT/scripts/postgres.sh" stop --data-dir "$DATA/postgres" >/dev/null
      say "PostgreSQL stopped"
    fi
    "$ROOT/scripts/kafka.sh" stop --port "$PORT"
    ;;
  status)
    "$ROOT/scripts/kafka.sh" status --port "$PORT" || true
    if [[ -d "$DATA/postgres" ]] && "$ROOT/scripts/postgres.sh" status --data-dir "$DATA/postgres"; then
      say "PostgreSQL running ($DATA/postgres)"
    fi
    pid_alive "$DATA/pids/haproxy.pid" && say "HAProxy running (pid $(cat "$DATA/pids/haproxy.pid"))"
    shopt -s nullglob
    for pidfile in "$DATA"/pids/*.pid; do
      name="$(basename "$pidfile" .pid)"
      [[ "$name" == haproxy ]] && continue
      if pid_alive "$pidfile"; then
        say "$name running (pid $(cat "$pidfile"))"
      else
        say "$name stopped"
      fi
    done
    ;;
esac
