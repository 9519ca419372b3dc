#!/usr/bin/env bash
# Usage: scripts/run.sh [start|stop|status]
#
# Runs orderpipe on this machine: installs what is missing (scripts/setup.sh), builds, starts a
# local Kafka broker on localhost:9092 (scripts/kafka.sh), creates the topics, then starts the
# services in the background and waits until each answers /readyz.
#   start   (default) everything above; idempotent: running services are left alone
#   stop    stops the services, then the broker
#   status  prints what runs
# Logs (JSON lines) and state go to .data/ (git-ignored): .data/logs/<service>.log,
# .data/<service>/ (SQLite), .data/pids/<service>.pid.
# Environment: KAFKA_PORT (9092), ORDER_HTTP_PORT (8080), INVENTORY_HTTP_PORT (8081),
# NOTIFICATION_HTTP_PORT (8082), ANALYTICS_HTTP_PORT (8083), PROVIDER_HTTP_PORT (8025: the fake email provider), and any
# service variable of docs/CONFIGURATION.md (e.g. LOG_LEVEL, NOTIFY_*), passed to every service.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DATA="$ROOT/.data"
PORT="${KAFKA_PORT:-9092}"
BOOTSTRAP="127.0.0.1:$PORT"

# name:port:binary, in start order (stopped in reverse)
PROVIDER_PORT="${PROVIDER_HTTP_PORT:-8025}"
SERVICES=(
  "fake-email-provider:$PROVIDER_PORT:tools/fake-email-provider"
  "inventory-service:${INVENTORY_HTTP_PORT:-8081}:inventory-service/inventory-service"
  "order-service:${ORDER_HTTP_PORT:-8080}:order-service/order-service"
  "notification-service:${NOTIFICATION_HTTP_PORT:-8082}:notification-service/notification-service"
  "analytics-service:${ANALYTICS_HTTP_PORT:-8083}:analytics-service/analytics-service"
)

say() { echo "run: $*"; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_service() {
  local name="$1" port="$2" binary="$ROOT/build/$3"
  local pidfile="$DATA/pids/$name.pid" log="$DATA/logs/$name.log"
  mkdir -p "$DATA/pids" "$DATA/logs" "$DATA/$name"
  if pid_alive "$pidfile"; then
    say "$name already running (pid $(cat "$pidfile")) on :$port"
    return
  fi
  KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" HTTP_PORT="$port" DATA_DIR="$DATA/$name" \
    NOTIFY_EMAIL_URL="${NOTIFY_EMAIL_URL:-http://127.0.0.1:$PROVIDER_PORT/send}" \
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

stop_service() {
  local name="$1" pidfile="$DATA/pids/$1.pid"
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

case "${1:-start}" in
  start)
    "$ROOT/scripts/setup.sh"
    "$ROOT/scripts/build.sh"
    "$ROOT/scripts/kafka.sh" start --port "$PORT" >/dev/null
    say "Kafka broker on $BOOTSTRAP"
    "$ROOT/scripts/create-topics.sh" --bootstrap "$BOOTSTRAP" >/dev/null
    say "topics created"
    for s in "${SERVICES[@]}"; do
      IFS=: read -r name port binary <<<"$s"
      start_service "$name" "$port" "$binary"
    done
    say "stop everything with: scripts/run.sh stop"
    ;;
  stop)
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
      IFS=: read -r name _ _ <<<"${SERVICES[$i]}"
      stop_service "$name"
    done
    "$ROOT/scripts/kafka.sh" stop --port "$PORT"
    ;;
  status)
    "$ROOT/scripts/kafka.sh" status --port "$PORT" || true
    for s in "${SERVICES[@]}"; do
      IFS=: read -r name port _ <<<"$s"
      if pid_alive "$DATA/pids/$name.pid"; then
        say "$name running on :$port (pid $(cat "$DATA/pids/$name.pid"))"
      else
        say "$name stopped"
      fi
    done
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
