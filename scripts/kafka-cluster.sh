#!/usr/bin/env bash
# Usage: scripts/kafka-cluster.sh <command> --data-dir DIR [options]
#
# Runs a local Apache Kafka 3.9.1 cluster of N KRaft nodes (each a combined broker+controller,
# every node a voter of the controller quorum) from the same jars as scripts/kafka.sh, which runs
# each node. Replication factor N (at most 3) for new and internal topics, min.insync.replicas 2:
# the layout of docker-compose.yml, so that leader moves, ISR shrinks and transaction-coordinator
# failover can be tested on one machine. Node K keeps its state in DIR/node-K (see kafka.sh).
#
# Commands:
#   start       [--nodes N] [--bootstrap-file F] [--timeout S]
#               the first start picks 2N free ports (stored in DIR/cluster.env) and a cluster
#               id; every node is started at once (the quorum needs a majority of its voters
#               before any node answers); waits until every node answers, then prints the
#               bootstrap list (host:port,host:port,...) as its LAST line and writes it into F.
#               Idempotent: running nodes are left alone, stopped ones started.
#   stop        SIGTERM every node, SIGKILL after KAFKA_STOP_TIMEOUT (30 s); idempotent
#   status      one line per node; exit 0 when every node runs, 3 otherwise
#   bootstrap   prints the bootstrap list
#   kill K      SIGKILL node K and wait until it is gone (a crash; restart with start-node)
#   stop-node K / start-node K    a clean stop / a (re)start of node K alone (start-node waits
#               until it answers)
#   pid K       prints node K's pid (exit 3 when it does not run)
#   port K      prints node K's client port
# Options: --nodes N [3; 1 to 9], --data-dir DIR (required) [KAFKA_CLUSTER_DIR],
#   --bootstrap-file F, --timeout S [KAFKA_START_TIMEOUT, 90].
# Environment: KAFKA_HEAP per node (default "-Xmx512m -Xms128m"), KAFKA_HOST, as for kafka.sh.
#
# Examples:
#   B=$(scripts/kafka-cluster.sh start --data-dir /tmp/c3 | tail -n1)
#   scripts/kafka-cluster.sh kill 2 --data-dir /tmp/c3; scripts/kafka-cluster.sh start-node 2 --data-dir /tmp/c3
#   scripts/kafka-cluster.sh stop --data-dir /tmp/c3
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
KAFKA_SH="$SCRIPT_DIR/kafka.sh"

die() {
  echo "kafka-cluster.sh: error: $*" >&2
  exit 1
}
say() { echo "kafka-cluster.sh: $*"; }
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
node_arg=""
case "$cmd" in
  start | stop | status | bootstrap) ;;
  kill | stop-node | start-node | pid | port)
    [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]] || die "$cmd needs a node number"
    node_arg="$1"
    shift
    ;;
  -h | --help | help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

nodes=""
data_dir="${KAFKA_CLUSTER_DIR:-}"
bootstrap_file=""
timeout="${KAFKA_START_TIMEOUT:-90}"
need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) need_arg "$@"; nodes="$2"; shift 2 ;;
    --data-dir) need_arg "$@"; data_dir="$2"; shift 2 ;;
    --bootstrap-file) need_arg "$@"; bootstrap_file="$2"; shift 2 ;;
    --timeout) need_arg "$@"; timeout="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ -n "$data_dir" ]] || die "--data-dir is required"
[[ -z "$nodes" || "$nodes" =~ ^[1-9]$ ]] || die "bad --nodes: $nodes (1 to 9)"
[[ "$timeout" =~ ^[0-9]+$ ]] || die "bad --timeout: $timeout"
data_dir="$(realpath -m -- "$data_dir")"
host="${KAFKA_HOST:-127.0.0.1}"
export KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms128m}"

# --- the cluster's layout: DIR/cluster.env ------------------------------------------------------
# NODES=3, CLUSTER_ID=..., PORT_1=..., CONTROLLER_PORT_1=..., ...
declare -A layout=()
load_layout() {
  local k v
  [[ -f "$data_dir/cluster.env" ]] || return 1
  while IFS='=' read -r k v; do
    [[ -n "$k" ]] && layout["$k"]="$v"
  done <"$data_dir/cluster.env"
  [[ -n "${layout[NODES]:-}" && -n "${layout[CLUSTER_ID]:-}" ]]
}

# Prints N distinct free ports below the ephemeral range (as kafka.sh does for one).
free_ports() {
  python3 - "$host" "$1" <<'EOF'
import random, socket, sys
host, n = sys.argv[1], int(sys.argv[2])
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
ports = []
for _ in range(5000):
    p = random.randrange(20000, 32000)
    if p not in ports and free(p):
        ports.append(p)
        if len(ports) == n:
            print(" ".join(map(str, ports)))
            sys.exit(0)
sys.exit("no free ports found")
EOF
}

new_layout() {
  local n="${nodes:-3}" ports cid k
  read -r -a ports <<<"$(free_ports $((2 * n)))"
  cid="$(python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"):
        print(u)
        break')"
  mkdir -p "$data_dir"
  {
    echo "NODES=$n"
    echo "CLUSTER_ID=$cid"
    for ((k = 1; k <= n; k++)); do
      echo "PORT_$k=${ports[$((2 * k - 2))]}"
      echo "CONTROLLER_PORT_$k=${ports[$((2 * k - 1))]}"
    done
  } >"$data_dir/cluster.env.tmp"
  mv -f "$data_dir/cluster.env.tmp" "$data_dir/cluster.env"
  load_layout
}

node_count() { echo "${layout[NODES]}"; }
node_dir() { echo "$data_dir/node-$1"; }
bootstrap_list() {
  local k out=""
  for ((k = 1; k <= $(node_count); k++)); do
    out+="${out:+,}$host:${layout[PORT_$k]}"
  done
  echo "$out"
}
voters() {
  local k out=""
  for ((k = 1; k <= $(node_count); k++)); do
    out+="${out:+,}$k@$host:${layout[CONTROLLER_PORT_$k]}"
  done
  echo "$out"
}
check_node() {
  [[ "$1" -ge 1 && "$1" -le "$(node_count)" ]] || die "no node $1 (the cluster has $(node_count))"
}
node_pid() {
  local f
  f="$(node_dir "$1")/kafka.pid"
  [[ -f "$f" ]] || return 1
  local pid
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $(node_dir "$1")/server.properties" ||
    return 1
  echo "$pid"
}

# Starts node K in the background (kafka.sh start waits until it answers); logs to
# DIR/node-K.start.log.
start_node_bg() {
  local k="$1" replication
  replication="$(node_count)"
  ((replication > 3)) && replication=3
  "$KAFKA_SH" start --port "${layout[PORT_$k]}" --controller-port "${layout[CONTROLLER_PORT_$k]}" \
    --data-dir "$(node_dir "$k")" --node-id "$k" --voters "$(voters)" \
    --cluster-id "${layout[CLUSTER_ID]}" --replication "$replication" --timeout "$timeout" \
    >"$data_dir/node-$k.start.log" 2>&1 &
}

wait_started() {
  local rc=0 pid k=1
  for pid in "$@"; do
    if ! wait "$pid"; then
      rc=1
    fi
  done
  return "$rc"
}

do_start() {
  if ! load_layout; then
    new_layout
    say "new cluster of $(node_count) nodes in $data_dir (id ${layout[CLUSTER_ID]})"
  elif [[ -n "$nodes" && "$nodes" != "$(node_count)" ]]; then
    die "$data_dir holds a cluster of $(node_count) nodes, not $nodes"
  fi
  local k pids=() started=()
  for ((k = 1; k <= $(node_count); k++)); do
    if node_pid "$k" >/dev/null; then
      continue
    fi
    start_node_bg "$k"
    pids+=($!)
    started+=("$k")
  done
  if ((${#pids[@]} > 0)); then
    say "starting node(s) ${started[*]}"
    if ! wait_started "${pids[@]}"; then
      for k in "${started[@]}"; do
        echo "---- node $k: kafka.sh start ----" >&2
        cat "$data_dir/node-$k.start.log" >&2 || true
      done
      die "the cluster did not start (logs in $data_dir/node-*/server.log)"
    fi
  fi
  local b
  b="$(bootstrap_list)"
  if [[ -n "$bootstrap_file" ]]; then
    mkdir -p "$(dirname "$bootstrap_file")"
    echo "$b" >"$bootstrap_file.tmp.$$"
    mv -f "$bootstrap_file.tmp.$$" "$bootstrap_file"
  fi
  say "cluster of $(node_count) nodes ready"
  echo "$b"
}

do_stop() {
  load_layout || {
    say "no cluster in $data_dir"
    return 0
  }
  local k pids=()
  for ((k = 1; k <= $(node_count); k++)); do
    "$KAFKA_SH" stop --data-dir "$(node_dir "$k")" >"$data_dir/node-$k.stop.log" 2>&1 &
    pids+=($!)
  done
  wait_started "${pids[@]}" || die "stopping a node failed (see $data_dir/node-*.stop.log)"
  say "stopped"
}

do_status() {
  load_layout || {
    echo "stopped (no cluster in $data_dir)"
    return 3
  }
  local k rc=0 pid
  for ((k = 1; k <= $(node_count); k++)); do
    if pid="$(node_pid "$k")"; then
      echo "node $k: running on $host:${layout[PORT_$k]} (pid $pid)"
    else
      echo "node $k: stopped"
      rc=3
    fi
  done
  return "$rc"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  status)
    rc=0
    do_status || rc=$?
    exit "$rc"
    ;;
  bootstrap)
    load_layout || die "no cluster in $data_dir"
    bootstrap_list
    ;;
  kill)
    load_layout || die "no cluster in $data_dir"
    check_node "$node_arg"
    if pid="$(node_pid "$node_arg")"; then
      kill -KILL "$pid" 2>/dev/null || true
      while [[ -r "/proc/$pid/stat" && "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
        sleep 0.05
      done
      rm -f "$(node_dir "$node_arg")/kafka.pid"
      say "node $node_arg (pid $pid) killed"
    else
      say "node $node_arg was not running"
    fi
    ;;
  stop-node)
    load_layout || die "no cluster in $data_dir"
    check_node "$node_arg"
    "$KAFKA_SH" stop --data-dir "$(node_dir "$node_arg")"
    ;;
  start-node)
    load_layout || die "no cluster in $data_dir"
    check_node "$node_arg"
    start_node_bg "$node_arg"
    if ! wait $!; then
      cat "$data_dir/node-$node_arg.start.log" >&2 || true
      die "node $node_arg did not start"
    fi
    say "node $node_arg started"
    ;;
  pid)
    load_layout || die "no cluster in $data_dir"
    check_node "$node_arg"
    node_pid "$node_arg" || exit 3
    ;;
  port)
    load_layout || die "no cluster in $data_dir"
    check_node "$node_arg"
    echo "${layout[PORT_$node_arg]}"
    ;;
esac
