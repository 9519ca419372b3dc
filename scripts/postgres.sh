#!/usr/bin/env bash
# Usage: scripts/postgres.sh start|stop|kill|status --data-dir DIR [--port N|auto] [--url-file F]
#                            [--database NAME]...
#
# A local PostgreSQL 15 server (Debian's postgresql-15) for development, tests and the chaos
# runs. The server refuses to run as root: when run as root, it runs as the `postgres` user
# (created by Debian's package), with its cluster in DIR/cluster.
#   start   initialises DIR/cluster if needed (user `orderpipe`, trust authentication on
#           127.0.0.1 and the socket in DIR only), starts the server on 127.0.0.1 and waits until
#           it accepts connections, creates every --database (default: orderpipe) that is not
#           there yet, and prints the URL of the first (written to --url-file as well). Already
#           running there: reused.
#   stop    stops it (fast shutdown) and waits.
#   kill    SIGKILLs the server's processes (a crash, for fault tests); `start` again recovers.
#   status  exit 0 when it runs, 1 when not.
# --port auto (the default) picks a free port, or reuses the one stored in DIR.
# Environment: PG_BINDIR (default /usr/lib/postgresql/15/bin).
set -euo pipefail

die() {
  echo "postgres.sh: error: $*" >&2
  exit 2
}
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
cmd="$1"
shift
data_dir=""
want_port="auto"
url_file=""
databases=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir) data_dir="${2:-}"; shift 2 ;;
    --port) want_port="${2:-}"; shift 2 ;;
    --url-file) url_file="${2:-}"; shift 2 ;;
    --database) databases+=("${2:-}"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ -n "$data_dir" ]] || die "--data-dir is required"
[[ "$want_port" == auto || "$want_port" =~ ^[0-9]+$ ]] || die "bad --port: $want_port"
((${#databases[@]})) || databases=(orderpipe)
for d in "${databases[@]}"; do
  [[ "$d" =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad --database: $d (lower case letters, digits, _)"
done

bindir="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
[[ -x "$bindir/postgres" ]] ||
  die "PostgreSQL 15 is not installed ($bindir/postgres missing): run scripts/setup.sh"

mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
cluster="$data_dir/cluster"
port_file="$data_dir/port"

# Runs a command as the server's user: `postgres` when we are root, else ourselves.
as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pick_free_port() {
  python3 - <<'EOF'
import random, socket, sys
for _ in range(500):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
sys.exit("no free port found")
EOF
}

running() { [[ -d "$cluster" ]] && as_owner "$bindir/pg_ctl" -D "$cluster" status >/dev/null 2>&1; }

case "$cmd" in
  start)
    if [[ "$want_port" != auto ]]; then
      port="$want_port"
    elif [[ -s "$port_file" ]]; then
      port="$(cat "$port_file")"
    else
      port="$(pick_free_port)"
    fi
    if ((EUID == 0)); then
      id postgres >/dev/null 2>&1 || die "user postgres missing (Debian's postgresql-15 creates it)"
      chown postgres: "$data_dir"
      # The server's user must reach its directory.
      d="$data_dir"
      while [[ "$d" != / ]]; do
        d="$(dirname "$d")"
        [[ -x "$d" && "$(stat -c %A "$d" | cut -c10)" == x ]] || chmod o+x "$d"
      done
    fi
    if [[ ! -f "$cluster/PG_VERSION" ]]; then
      rm -rf "$cluster"
      as_owner "$bindir/initdb" -D "$cluster" -U orderpipe -A trust -E UTF8 --locale=C \
        --no-instructions >"$data_dir/initdb.log" 2>&1 ||
        { cat "$data_dir/initdb.log" >&2; die "initdb failed"; }
      cat >>"$cluster/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data_dir'
max_connections = 200
shared_buffers = 128MB
# A test server: a crash of the process is what the tests cause, not a power loss.
fsync = off
full_page_writes = off
EOF
    fi
    echo "$port" >"$port_file"
    chown --reference="$data_dir" "$port_file" 2>/dev/null || true
    if ! running; then
      # A SIGKILLed server leaves its pid file; the server sees its processes are gone.
      as_owner "$bindir/pg_ctl" -D "$cluster" -l "$data_dir/server.log" -w -t 60 \
        -o "-p $port" start >/dev/null ||
        { tail -n 20 "$data_dir/server.log" >&2; die "the server did not start (log: $data_dir/server.log)"; }
    fi
    for d in "${databases[@]}"; do
      if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U orderpipe -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$d'" | grep -q 1; then
        "$bindir/psql" -h 127.0.0.1 -p "$port" -U orderpipe -d postgres -qc \
          "CREATE DATABASE $d" >/dev/null 2>&1 ||
          "$bindir/psql" -h 127.0.0.1 -p "$port" -U orderpipe -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$d'" | grep -q 1 ||
          die "could not create database $d"
      fi
    done
    url="postgresql://orderpipe@127.0.0.1:$port/${databases[0]}"
    [[ -z "$url_file" ]] || echo "$url" >"$url_file"
    echo "$url"
    ;;
  stop)
    if running; then
      as_owner "$bindir/pg_ctl" -D "$cluster" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  kill)
    if [[ -f "$cluster/postmaster.pid" ]]; then
      pid="$(head -n1 "$cluster/postmaster.pid")"
      # The postmaster and every backend it forked.
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    ;;
  status)
    running
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
