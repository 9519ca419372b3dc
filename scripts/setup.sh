#!/usr/bin/env bash
# Usage: scripts/setup.sh
#
# Installs everything orderpipe needs on Debian bookworm, idempotently (a second run takes a
# second or two and touches no network):
#   1. the Debian packages listed in scripts/packages/build.txt (apt-get update + install only
#      when one is missing; uses sudo when not root);
#   2. Apache Kafka 3.9.1 (broker + console tools) as jars from Maven Central, copied by
#      `mvn dependency:copy-dependencies` from scripts/kafka/pom.xml into
#      ${ORDERPIPE_CACHE_DIR:-$HOME/.cache/orderpipe}/kafka-3.9.1/libs/ (outside the repo);
#   3. promtool (the tests check every /metrics with `promtool check metrics`), taken out of
#      Debian's `prometheus` package into ${ORDERPIPE_CACHE_DIR}/promtool/ without installing
#      the package (which would start a Prometheus server); scripts/bin/promtool runs it.
# Then: scripts/build.sh && scripts/kafka.sh start && scripts/create-topics.sh
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"

# The package list lives in one file, also read by docker/Dockerfile's build stage: one package
# a line, '#' starts a comment.
PACKAGE_LIST="$SCRIPT_DIR/packages/build.txt"
if [[ ! -r "$PACKAGE_LIST" ]]; then
  echo "setup: error: cannot read the package list $PACKAGE_LIST" >&2
  exit 1
fi
mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$PACKAGE_LIST")
if ((${#PACKAGES[@]} == 0)); then
  echo "setup: error: no package in $PACKAGE_LIST" >&2
  exit 1
fi

log() { echo "setup: $*"; }

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO=(sudo)
fi
need_sudo() {
  if ((${#SUDO[@]} > 0)) && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: error: not root and sudo is not installed: run scripts/setup.sh as root" >&2
    exit 1
  fi
}

start_s=$SECONDS

# --- 1. Debian packages -------------------------------------------------------------------
missing=()
declare -A installed=()
while IFS=$'\t' read -r pkg status; do
  if [[ "$status" == "install ok installed" ]]; then
    installed["$pkg"]=1
  fi
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for pkg in "${PACKAGES[@]}"; do
  if [[ -z "${installed[$pkg]:-}" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  log "Debian packages: all ${#PACKAGES[@]} present"
else
  log "Debian packages: installing ${#missing[@]} missing: ${missing[*]}"
  need_sudo
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. Apache Kafka jars from Maven Central ----------------------------------------------
# shellcheck source=lib/kafka-env.sh
source "$SCRIPT_DIR/lib/kafka-env.sh"

POM="$SCRIPT_DIR/kafka/pom.xml"
pom_hash="$(sha256sum "$POM" | cut -d' ' -f1)"
if [[ -f "$KAFKA_LIBS_MARKER" && -d "$KAFKA_LIBS" && "$(cat "$KAFKA_LIBS_MARKER")" == "$pom_hash" ]]; then
  log "Kafka $KAFKA_VERSION jars: present in $KAFKA_LIBS"
else
  log "Kafka $KAFKA_VERSION jars: fetching from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_HOME"
  rm -f "$KAFKA_LIBS_MARKER"
  tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
    cat "$KAFKA_HOME/mvn.log" >&2
    echo "setup: error: mvn dependency:copy-dependencies failed (log: $KAFKA_HOME/mvn.log)" >&2
    exit 1
  fi
  if [[ ! -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" || ! -f "$tmp/kafka-tools-$KAFKA_VERSION.jar" ]]; then
    echo "setup: error: Maven did not copy the Kafka $KAFKA_VERSION jars" >&2
    exit 1
  fi
  rm -rf "$KAFKA_LIBS"
  mv -T "$tmp" "$KAFKA_LIBS"
  trap - EXIT
  echo "$pom_hash" >"$KAFKA_LIBS_MARKER"
  log "Kafka $KAFKA_VERSION jars: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars," \
    "$(du -sh "$KAFKA_LIBS" | cut -f1)"
fi

# --- 3. promtool from Debian's prometheus package ---------------------------------------------
PROMTOOL="$ORDERPIPE_CACHE_DIR/promtool/promtool"
if [[ -x "$PROMTOOL" ]]; then
  log "promtool: present in $PROMTOOL"
else
  log "promtool: extracting it from Debian's prometheus package"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    # The package lists may never have been fetched (or were cleaned) on this machine.
    need_sudo
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    (cd "$work" && apt-get download prometheus >/dev/null)
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p "$(dirname "$PROMTOOL")"
  install -m 0755 "$work/x/usr/bin/promtool" "$PROMTOOL.tmp"
  mv -f "$PROMTOOL.tmp" "$PROMTOOL"
  rm -rf "$work"
  trap - EXIT
  log "promtool: $("$PROMTOOL" --version 2>&1 | head -n 1)"
fi

log "done in $((SECONDS - start_s)) s (then: scripts/build.sh, scripts/kafka.sh start, scripts/create-topics.sh)"
