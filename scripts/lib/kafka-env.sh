# shellcheck shell=bash
# Usage: source "<repo>/scripts/lib/kafka-env.sh"   (from bash; not meant to be executed)
#
# Sets up the environment for running Apache Kafka (broker and console tools) from the jars
# that scripts/setup.sh copied out of Maven Central:
#   ORDERPIPE_ROOT        the repository root
#   ORDERPIPE_CACHE_DIR   cache outside the repo (default: $HOME/.cache/orderpipe)
#   KAFKA_VERSION         3.9.1
#   KAFKA_HOME            $ORDERPIPE_CACHE_DIR/kafka-$KAFKA_VERSION
#   KAFKA_LIBS            $KAFKA_HOME/libs (the class path)
# and defines:
#   kafka_require_jars              fail with "run scripts/setup.sh first" if the jars are missing
#   kafka_java <mainclass> args...  run a Kafka main class (tool defaults: -Xmx256m, WARN logs
#                                   to stderr); honours KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
#                                   KAFKA_LOG4J_OPTS and KAFKA_OPTS like Kafka's kafka-run-class.sh
#   kafka_exec <mainclass> args...  the same, replacing the current shell (for the wrappers)
#   kafka_java_argv <mainclass> args...  only build the command line into KAFKA_JAVA_ARGV
# KAFKA_EXTRA_CLASSPATH, if set, is put before the Kafka jars on the class path.

ORDERPIPE_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
ORDERPIPE_CACHE_DIR="${ORDERPIPE_CACHE_DIR:-${HOME:-/tmp}/.cache/orderpipe}"
KAFKA_VERSION="3.9.1"
KAFKA_HOME="$ORDERPIPE_CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
# Written by setup.sh only after every jar was copied.
KAFKA_LIBS_MARKER="$KAFKA_HOME/.libs-complete"
export ORDERPIPE_ROOT ORDERPIPE_CACHE_DIR KAFKA_VERSION KAFKA_HOME KAFKA_LIBS

kafka_require_jars() {
  if [[ ! -f "$KAFKA_LIBS_MARKER" || ! -d "$KAFKA_LIBS" ]]; then
    echo "error: Apache Kafka $KAFKA_VERSION jars not found in $KAFKA_LIBS:" \
      "run scripts/setup.sh first" >&2
    return 1
  fi
  if ! command -v java >/dev/null 2>&1; then
    echo "error: java not found on PATH: run scripts/setup.sh first" >&2
    return 1
  fi
}

# Builds the java command line for <mainclass> into the array KAFKA_JAVA_ARGV.
kafka_java_argv() {
  local main="$1"
  shift
  local heap="${KAFKA_HEAP_OPTS:--Xmx256m}"
  # Short-lived tools: C1 only and the serial collector start fastest.
  local perf="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.awt.headless=true}"
  local log4j="${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$ORDERPIPE_ROOT/scripts/kafka/tools-log4j.properties}"
  local -a opts=()
  # Word splitting of the option strings is intended (same as kafka-run-class.sh).
  # shellcheck disable=SC2206
  opts=($heap $perf $log4j ${KAFKA_OPTS:-})
  local cp="$KAFKA_LIBS/*"
  if [[ -n "${KAFKA_EXTRA_CLASSPATH:-}" ]]; then
    cp="$KAFKA_EXTRA_CLASSPATH:$cp"
  fi
  KAFKA_JAVA_ARGV=(java "${opts[@]}" -cp "$cp" "$main" "$@")
}

kafka_java() {
  kafka_require_jars || return 1
  kafka_java_argv "$@"
  "${KAFKA_JAVA_ARGV[@]}"
}

kafka_exec() {
  kafka_require_jars || exit 1
  kafka_java_argv "$@"
  exec "${KAFKA_JAVA_ARGV[@]}"
}

