#!/usr/bin/env bash
# Usage: scripts/kafka.sh start|stop|status|restart [options]
#
# Runs one Apache Kafka 3.9.1 node in KRaft mode (combined broker+controller) from the jars
# fetched by scripts/setup.sh, in the background: a single-node cluster by default (node.id=1),
# or one node of a larger cluster (scripts/kafka-cluster.sh runs three of these).
#
# Options (environment variable in brackets):
#   --port N|auto          PLAINTEXT listener port on 127.0.0.1 [KAFKA_PORT, default 9092];
#                          "auto" picks a free port (or reuses the one stored in --data-dir)
#   --controller-port N    controller listener port [KAFKA_CONTROLLER_PORT, default: port+1
#                          if free, else any free port]
#   --data-dir DIR         broker state: server.properties, kafka-logs/, server.log, kafka.pid
#                          [KAFKA_DATA_DIR, default <repo>/.data/kafka-<port>]
#   --bootstrap-file F     start: write the bootstrap string (127.0.0.1:<port>) into F once up
#   --timeout S            start: seconds to wait for the broker [KAFKA_START_TIMEOUT, 60]
# Cluster options (stored in --data-dir on first start, reused by later starts):
#   --node-id N            node.id [1]
#   --voters V             controller.quorum.voters, e.g. 1@127.0.0.1:9093,2@127.0.0.1:9095
#                          [this node alone: N@host:controller-port]
#   --cluster-id ID        the cluster id every node is formatted with [a new one]
#   --replication R        replication factor of new and internal topics; R > 1 also sets
#                          min.insync.replicas (and the transaction log's min ISR) to 2 [1]
# Other environment: KAFKA_HEAP (default "-Xmx768m -Xms256m"), KAFKA_STOP_TIMEOUT (30 s),
#   KAFKA_HOST (listen/advertise address, default 127.0.0.1), KAFKA_OPTS (extra JVM options).
#
# start   formats the storage on first use (cluster id kept in the data dir), starts the broker
#         and waits until it answers a metadata request; idempotent. The LAST line of its
#         stdout is the bootstrap string, e.g.  127.0.0.1:9092
# stop    SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT; idempotent. With only --data-dir it
#         finds the port and pid in the data dir.
# status  prints "running <bootstrap> ..." (exit 0) or "stopped ..." (exit 3).
# restart stop + start.
#
# Examples:
#   scripts/kafka.sh start                       # 127.0.0.1:9092, data in .data/kafka-9092
#   B=$(scripts/kafka.sh start --port auto --data-dir /tmp/k1 | tail -n1)
#   scripts/kafka.sh stop --data-dir /tmp/k1
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# shellcheck source=lib/kafka-env.sh
source "$SCRIPT_DIR/lib/kafka-env.sh"

die() {
  echo "kafka.sh: error: $*" >&2
  exit 1
}
say() { echo "kafka.sh: $*"; }
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------- arguments
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start | stop | status | restart) ;;
  -h | --help | help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

opt_port=""
env_port="${KAFKA_PORT:-}"
opt_cport="${KAFKA_CONTROLLER_PORT:-}"
opt_data="${KAFKA_DATA_DIR:-}"
opt_bootstrap_file=""
opt_node_id=""
opt_voters=""
opt_cluster_id=""
opt_replication=""
start_timeout="${KAFKA_START_TIMEOUT:-60}"
stop_timeout="${KAFKA_STOP_TIMEOUT:-30}"
host="${KAFKA_HOST:-127.0.0.1}"
heap="${KAFKA_HEAP:--Xmx768m -Xms256m}"

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) need_arg "$@"; opt_port="$2"; shift 2 ;;
    --port=*) opt_port="${1#*=}"; shift ;;
    --controller-port) need_arg "$@"; opt_cport="$2"; shift 2 ;;
    --controller-port=*) opt_cport="${1#*=}"; shift ;;
    --data-dir) need_arg "$@"; opt_data="$2"; shift 2 ;;
    --data-dir=*) opt_data="${1#*=}"; shift ;;
    --bootstrap-file) need_arg "$@"; opt_bootstrap_file="$2"; shift 2 ;;
    --bootstrap-file=*) opt_bootstrap_file="${1#*=}"; shift ;;
    --timeout) need_arg "$@"; start_timeout="$2"; shift 2 ;;
    --node-id) need_arg "$@"; opt_node_id="$2"; shift 2 ;;
    --voters) need_arg "$@"; opt_voters="$2"; shift 2 ;;
    --cluster-id) need_arg "$@"; opt_cluster_id="$2"; shift 2 ;;
    --replication) need_arg "$@"; opt_replication="$2"; shift 2 ;;
    --timeout=*) start_timeout="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
[[ -z "$opt_port" || "$opt_port" == auto ]] || is_port "$opt_port" || die "bad --port: $opt_port"
[[ -z "$env_port" || "$env_port" == auto ]] || is_port "$env_port" || die "bad KAFKA_PORT: $env_port"
[[ -z "$opt_cport" ]] || is_port "$opt_cport" || die "bad --controller-port: $opt_cport"
[[ "$start_timeout" =~ ^[0-9]+$ ]] || die "bad start timeout: $start_timeout"
[[ -z "$opt_node_id" || "$opt_node_id" =~ ^[0-9]+$ ]] || die "bad --node-id: $opt_node_id"
[[ -z "$opt_replication" || "$opt_replication" =~ ^[1-9]$ ]] ||
  die "bad --replication: $opt_replication (1 to 9)"
[[ -z "$opt_voters" || "$opt_voters" =~ ^[0-9]+@[^,@]+:[0-9]+(,[0-9]+@[^,@]+:[0-9]+)*$ ]] ||
  die "bad --voters: $opt_voters (expected id@host:port,...)"
[[ -z "$opt_cluster_id" || "$opt_cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] ||
  die "bad --cluster-id: $opt_cluster_id (22 characters of URL-safe base64)"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || die "bad KAFKA_STOP_TIMEOUT: $stop_timeout"

# ---------------------------------------------------------------------------- helpers
# True when <port> can be bound on $host (SO_REUSEADDR, as the broker binds it).
port_is_free() {
  python3 - "$host" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}

# Prints a free port below the kernel's ephemeral range (so no outgoing connection takes it
# meanwhile); with "pair", one whose successor is free as well (for the controller).
pick_free_port() {
  python3 - "$host" "${1:-}" <<'EOF'
import random, socket, sys
host, pair = sys.argv[1], sys.argv[2] == "pair"
def free(p):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    p = random.randrange(20000, 32000, 2 if pair else 1)
    if free(p) and (not pair or free(p + 1)):
        print(p)
        sys.exit(0)
sys.exit("no free port found")
EOF
}

# Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding, not starting "-".
new_cluster_id() {
  python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"):
        print(u)
        break'
}

# Alive and not a zombie.
pid_alive() {
  local st
  [[ -r "/proc/$1/stat" ]] || return 1
  st="$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

is_our_broker() {
  pid_alive "$1" &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $data_dir/server.properties "
}

# Prints the pid of the broker of $data_dir if it runs (from kafka.pid; if that file is gone
# or stale, by looking for its command line).
broker_pid() {
  local pid=""
  if [[ -f "$data_dir/kafka.pid" ]]; then
    pid="$(cat "$data_dir/kafka.pid" 2>/dev/null)" || pid=""
  fi
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
    echo "$pid"
    return 0
  fi
  command -v pgrep >/dev/null 2>&1 || return 1
  for pid in $(pgrep -f -- "kafka\.Kafka .*server\.properties" || true); do
    if is_our_broker "$pid"; then
      echo "$pid" >"$data_dir/kafka.pid"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# True when a Kafka broker answers a metadata request on <host:port>.
broker_answers() {
  if command -v kcat >/dev/null 2>&1; then
    kcat -L -b "$1" -m 2 2>/dev/null | grep -q ' broker [0-9]* at '
  else
    KAFKA_LOG4J_OPTS="-Dlog4j.configuration=file:$ORDERPIPE_ROOT/scripts/kafka/tools-log4j.properties -Dlog4j.rootLogger=OFF" \
      kafka_java kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$1" >/dev/null 2>&1
  fi
}

# True when server.log, from byte <offset> on, says the broker started (checked before asking
# it: a metadata request sent too early only waits).
started_logged() {
  local f="$data_dir/server.log" size
  size="$(stat -c %s "$f" 2>/dev/null)" || return 1
  # Rolled over meanwhile: read it all.
  local from=$(($1 + 1))
  ((size >= $1)) || from=1
  tail -c "+$from" "$f" | grep -q 'Kafka Server started'
}

# Reads PORT, CONTROLLER_PORT, CLUSTER_ID from $data_dir/broker.env (written by start).
stored_port="" stored_cport="" stored_cluster_id="" stored_node_id="" stored_voters=""
stored_replication=""
load_state() {
  local f="$data_dir/broker.env" k v
  [[ -f "$f" ]] || return 0
  while IFS='=' read -r k v; do
    case "$k" in
      PORT) stored_port="$v" ;;
      CONTROLLER_PORT) stored_cport="$v" ;;
      CLUSTER_ID) stored_cluster_id="$v" ;;
      NODE_ID) stored_node_id="$v" ;;
      VOTERS) stored_voters="$v" ;;
      REPLICATION) stored_replication="$v" ;;
    esac
  done <"$f"
}

write_bootstrap_file() {
  [[ -n "$opt_bootstrap_file" ]] || return 0
  mkdir -p "$(dirname "$opt_bootstrap_file")"
  echo "$1" >"$opt_bootstrap_file.tmp.$$"
  mv -f "$opt_bootstrap_file.tmp.$$" "$opt_bootstrap_file"
}

log_tail() {
  local f
  for f in "$data_dir/kafka.out" "$data_dir/server.log"; do
    if [[ -s "$f" ]]; then
      echo "---- last lines of $f ----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# ---------------------------------------------------------------------------- data dir & port
if [[ -n "$opt_data" ]]; then
  data_dir="$(realpath -m -- "$opt_data")"
  load_state
fi

# Port: for start, --port N > the port stored in --data-dir > KAFKA_PORT=N > auto > 9092;
# for stop/status, the stored port (that is where it runs) > --port/KAFKA_PORT > 9092.
port=""
want_port="${opt_port:-$env_port}"
starting=0
[[ "$cmd" == start || "$cmd" == restart ]] && starting=1
if ((starting)) && is_port "${opt_port:-x}"; then
  port="$opt_port"
elif [[ -n "$stored_port" ]]; then
  port="$stored_port"
elif is_port "${want_port:-x}"; then
  port="$want_port"
elif [[ "$want_port" == auto ]] && ((starting)); then
  port="$(pick_free_port "$([[ -z "$opt_cport" ]] && echo pair)")"
elif [[ "$want_port" == auto ]]; then
  # stop/status of a data dir that has never been started: nothing runs there.
  [[ -n "${data_dir:-}" ]] || die "--port auto needs --data-dir for $cmd"
  port=0
else
  port=9092
fi
if [[ -z "${data_dir:-}" ]]; then
  data_dir="$ORDERPIPE_ROOT/.data/kafka-$port"
  load_state
fi
bootstrap="$host:$port"
[[ "$host" == *:* ]] && bootstrap="[$host]:$port"

# Serialise start/stop on one data dir.
lock_data_dir() {
  mkdir -p "$data_dir"
  exec 9>"$data_dir/.lock"
  flock -w 120 9 || die "another kafka.sh holds $data_dir/.lock"
}

# ---------------------------------------------------------------------------- commands
do_status() {
  local pid
  if pid="$(broker_pid)"; then
    if broker_answers "$bootstrap"; then
      echo "running $bootstrap (pid $pid, data dir $data_dir)"
    else
      echo "running $bootstrap (pid $pid, data dir $data_dir) but not answering yet"
    fi
    return 0
  fi
  echo "stopped (data dir $data_dir)"
  return 3
}

do_stop() {
  local pid t0 deadline
  if [[ ! -d "$data_dir" ]]; then
    say "not running (no data dir $data_dir)"
    return 0
  fi
  lock_data_dir
  if ! pid="$(broker_pid)"; then
    rm -f "$data_dir/kafka.pid"
    say "not running (data dir $data_dir)"
    return 0
  fi
  t0="$(now_ms)"
  say "stopping broker pid $pid ($bootstrap)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + stop_timeout))
  while pid_alive "$pid" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if pid_alive "$pid"; then
    say "still running after ${stop_timeout} s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    pid_alive "$pid" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$data_dir/kafka.pid"
  say "stopped in $(($(now_ms) - t0)) ms"
}

do_start() {
  local pid t0 cport cluster_id deadline

  t0="$(now_ms)"
  kafka_require_jars || exit 1
  command -v python3 >/dev/null 2>&1 || die "python3 not found: run scripts/setup.sh first"
  local created_data_dir=0
  [[ -d "$data_dir" ]] || created_data_dir=1
  lock_data_dir

  if pid="$(broker_pid)"; then
    if [[ -n "$stored_port" && "$stored_port" != "$port" ]]; then
      die "the broker of $data_dir already runs on port $stored_port (pid $pid): stop it first to move it to port $port"
    fi
    if ! broker_answers "$bootstrap"; then
      die "broker pid $pid of $data_dir runs but does not answer on $bootstrap (see $data_dir/server.log)"
    fi
    say "already running (pid $pid, data dir $data_dir)"
    write_bootstrap_file "$bootstrap"
    echo "$bootstrap"
    return 0
  fi

  if [[ "$want_port" == auto ]] && ! is_port "${opt_port:-x}" && ! port_is_free "$port"; then
    # The port stored in the data dir was taken meanwhile: pick another one.
    port="$(pick_free_port "$([[ -z "$opt_cport" ]] && echo pair)")"
    bootstrap="${bootstrap%:*}:$port"
  fi
  if ! port_is_free "$port"; then
    if broker_answers "$bootstrap"; then
      say "a Kafka broker already answers on $bootstrap (not started from $data_dir): using it"
      if ((created_data_dir)); then
        rm -f "$data_dir/.lock"
        rmdir "$data_dir" 2>/dev/null || true
      fi
      write_bootstrap_file "$bootstrap"
      echo "$bootstrap"
      return 0
    fi
    die "port $port on $host is in use by something that is not a Kafka broker"
  fi

  # Controller port: explicit > stored > port+1 > any free one.
  if [[ -n "$opt_cport" ]]; then
    cport="$opt_cport"
    [[ "$cport" != "$port" ]] || die "--controller-port must differ from --port"
    port_is_free "$cport" || die "controller port $cport on $host is in use"
  else
    cport=""
    for c in "$stored_cport" "$((port + 1))"; do
      if is_port "${c:-x}" && [[ "$c" != "$port" ]] && port_is_free "$c"; then
        cport="$c"
        break
      fi
    done
    while [[ -z "$cport" || "$cport" == "$port" ]]; do
      cport="$(pick_free_port)"
    done
  fi

  if [[ -n "$opt_cluster_id" && -n "$stored_cluster_id" && "$opt_cluster_id" != "$stored_cluster_id" ]]; then
    die "$data_dir belongs to cluster $stored_cluster_id, not $opt_cluster_id"
  fi
  cluster_id="${opt_cluster_id:-${stored_cluster_id:-$(new_cluster_id)}}"
  local node_id="${opt_node_id:-${stored_node_id:-1}}"
  local voters="${opt_voters:-${stored_voters:-$node_id@${bootstrap%:*}:$cport}}"
  local replication="${opt_replication:-${stored_replication:-1}}"
  local min_isr=1
  ((replication > 1)) && min_isr=2
  local logs_dir="$data_dir/kafka-logs"
  mkdir -p "$logs_dir"

  cat >"$data_dir/server.properties" <<EOF
# Written by scripts/kafka.sh on every start: edits are overwritten.
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=PLAINTEXT://$bootstrap,CONTROLLER://${bootstrap%:*}:$cport
advertised.listeners=PLAINTEXT://$bootstrap
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$logs_dir
num.partitions=3
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
# After a SIGKILL the restarted controller waits one session timeout for the dead incarnation
# before it lets the broker register again (9 s by default): shorter for a local broker.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
EOF
  {
    echo "PORT=$port"
    echo "CONTROLLER_PORT=$cport"
    echo "CLUSTER_ID=$cluster_id"
    echo "NODE_ID=$node_id"
    echo "VOTERS=$voters"
    echo "REPLICATION=$replication"
    echo "HOST=$host"
  } >"$data_dir/broker.env"

  if [[ ! -f "$logs_dir/meta.properties" ]]; then
    say "formatting storage in $logs_dir (cluster id $cluster_id)"
    if ! kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      -c "$data_dir/server.properties" >"$data_dir/format.log" 2>&1; then
      cat "$data_dir/format.log" >&2
      die "formatting the storage failed"
    fi
  fi

  say "starting broker on $bootstrap (controller $host:$cport, data dir $data_dir)"
  local perf="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
  perf+=" -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
  KAFKA_HEAP_OPTS="$heap" \
    KAFKA_JVM_PERFORMANCE_OPTS="$perf" \
    KAFKA_LOG4J_OPTS="-Dlog4j.configuration=file:$ORDERPIPE_ROOT/scripts/kafka/log4j.properties -Dkafka.logs.dir=$data_dir" \
    kafka_java_argv kafka.Kafka "$data_dir/server.properties"
  echo "---- $(date -Is) kafka.sh start" >>"$data_dir/kafka.out"
  local log_offset
  log_offset="$(stat -c %s "$data_dir/server.log" 2>/dev/null || echo 0)"
  # setsid: the broker outlives this script and is not hit by signals sent to its caller's
  # process group (CTest, the terminal). No fd of ours stays open in it.
  setsid nohup "${KAFKA_JAVA_ARGV[@]}" </dev/null >>"$data_dir/kafka.out" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$data_dir/kafka.pid"

  deadline=$((SECONDS + start_timeout))
  local n=0
  while true; do
    n=$((n + 1))
    if ! pid_alive "$pid"; then
      log_tail
      rm -f "$data_dir/kafka.pid"
      die "the broker exited during start-up (logs: $data_dir/server.log, $data_dir/kafka.out)"
    fi
    # Probe once the broker logged that it started (or every ~2 s whatever the log says).
    if { started_logged "$log_offset" || ((n % 10 == 0)); } && broker_answers "$bootstrap"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      log_tail
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$data_dir/kafka.pid"
      die "the broker did not answer on $bootstrap within $start_timeout s (killed it)"
    fi
    sleep 0.2
  done
  say "started in $(($(now_ms) - t0)) ms (pid $pid, log $data_dir/server.log)"
  write_bootstrap_file "$bootstrap"
  echo "$bootstrap"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  status)
    rc=0
    do_status || rc=$?
    exit "$rc"
    ;;
  restart)
    do_stop
    exec 9>&-
    do_start
    ;;
esac
