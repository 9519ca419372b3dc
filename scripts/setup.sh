#!/usr/bin/env bash
# Usage: scripts/setup.sh
#
# Installs everything orderpipe needs on Debian bookworm, idempotently (a second run takes a
# second or two and touches no network):
#   1. the Debian packages listed in scripts/packages/build.txt (to build) and
#      scripts/packages/test.txt (only the tests need them, e.g. chromium; the image build does
#      not install it) (apt-get update + install only when one is missing; uses sudo when not
#      root);
#   2. Apache Kafka 3.9.1 (broker + console tools) as jars from Maven Central, copied by
#      `mvn dependency:copy-dependencies` from scripts/kafka/pom.xml into
#      ${ORDERPIPE_CACHE_DIR:-$HOME/.cache/orderpipe}/kafka-3.9.1/libs/ (outside the repo);
#   3. promtool (the tests check every /metrics with `promtool check metrics`), taken out of
#      Debian's `prometheus` package into ${ORDERPIPE_CACHE_DIR}/promtool/ without installing
#      the package (which would start a Prometheus server); scripts/bin/promtool runs it.
#   4. a current librdkafka (2.8.0), which the build links by default (-DORDERPIPE_LIBRDKAFKA=auto;
#      Debian's 2.0.2 is the fallback and a build option: docs/BENCHMARKS.md "librdkafka" says
#      why this version): the self-contained librdkafka (it needs libc only) that Confluent ships
#      inside the confluent-kafka wheel on PyPI, fetched at a pinned version and SHA-256 into
#      ${ORDERPIPE_CACHE_DIR}/librdkafka-*/ (x86_64 only; skipped with ORDERPIPE_LIBRDKAFKA=debian;
#      optional: a failed download is a warning and the build links Debian's).
#   5. Node.js and npm from Debian (scripts/packages/node.txt), only when no `npm` is on PATH (a
#      NodeSource nodejs brings its own npm, and conflicts with Debian's npm package); then the
#      console's page's npm packages (TypeScript, uPlot, playwright-core), exactly as
#      console/web/package-lock.json pins them, by `npm ci` into console/web/node_modules, when
#      it is missing or older than the lock file. The build compiles the page with them and
#      downloads nothing; the browser test (tests/browser/console.mjs) drives Debian's chromium,
#      which is on test.txt (step 1).
# Then: scripts/build.sh && scripts/kafka.sh start && scripts/create-topics.sh
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"

# The package lists live in files: packages/build.txt, also read by docker/Dockerfile's build
# stage, and packages/test.txt, what only the tests need (installed here, not in the images). One
# package a line, '#' starts a comment. Both are installed by the one step below.
PACKAGE_LISTS=("$SCRIPT_DIR/packages/build.txt" "$SCRIPT_DIR/packages/test.txt")
PACKAGES=()
for list in "${PACKAGE_LISTS[@]}"; do
  if [[ ! -r "$list" ]]; then
    echo "setup: error: cannot read the package list $list" >&2
    exit 1
  fi
  mapfile -t listed < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$list")
  if ((${#listed[@]} == 0)); then
    echo "setup: error: no package in $list" >&2
    exit 1
  fi
  PACKAGES+=("${listed[@]}")
done

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

# --- 4. librdkafka 2.8.0 from Confluent's confluent-kafka wheel (PyPI) --------------------------
# Debian bookworm's librdkafka is 2.0.2: it spins its main thread ~2 ms of CPU per transaction
# (librdkafka #4684, fixed in 2.3.1) and has the bugs the project works around. The wheel's
# confluent_kafka.libs/librdkafka-<hash>.so.1 is librdkafka itself with its dependencies built in,
# the C ABI Debian's rdkafka.h declares. CMake links it unless -DORDERPIPE_LIBRDKAFKA=debian
# (cmake/OrderpipeDependencies.cmake). Why 2.8.0 and not the newest: librdkafka 2.10 to 2.16 can
# leave a transactional producer's send_offsets_to_transaction waiting for ever after a broker
# restart (librdkafka #5511); the chaos runs catch it (docs/BENCHMARKS.md "librdkafka").
RDKAFKA_VERSION=2.8.0
RDKAFKA_WHEEL="confluent_kafka-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl"
RDKAFKA_WHEEL_URL="https://files.pythonhosted.org/packages/fe/7d/0078882ae557bfe32ff116d242079d46289059483122435ed451439fcc4f/$RDKAFKA_WHEEL"
RDKAFKA_WHEEL_SHA256=a10d4f26d4789c474514a5f853eeb59bf1771b131728495e6151b22ff86d4d04
RDKAFKA_HOME="$ORDERPIPE_CACHE_DIR/librdkafka-$RDKAFKA_VERSION"
if [[ "${ORDERPIPE_LIBRDKAFKA:-bundled}" == debian ]]; then
  log "librdkafka: Debian's (ORDERPIPE_LIBRDKAFKA=debian)"
elif [[ "$(uname -m)" != x86_64 ]]; then
  log "librdkafka: Debian's (the wheel's build is for x86_64 only)"
elif [[ -f "$RDKAFKA_HOME/lib/librdkafka.so" ]]; then
  log "librdkafka: $RDKAFKA_VERSION present in $RDKAFKA_HOME"
else
  log "librdkafka: fetching $RDKAFKA_VERSION (the confluent-kafka wheel on PyPI) into $RDKAFKA_HOME"
  fetch_rdkafka() {
    local work lib
    work="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    curl -fsSL --retry 3 -o "$work/$RDKAFKA_WHEEL" "$RDKAFKA_WHEEL_URL" || return 1
    if ! echo "$RDKAFKA_WHEEL_SHA256  $work/$RDKAFKA_WHEEL" | sha256sum -c --quiet -; then
      echo "setup: $RDKAFKA_WHEEL does not have the pinned SHA-256 $RDKAFKA_WHEEL_SHA256" >&2
      return 1
    fi
    # A wheel is a zip file; python3 is on the package list.
    python3 - "$work/$RDKAFKA_WHEEL" "$work/lib" <<'PY' || return 1
import pathlib, sys, zipfile
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
out.mkdir(parents=True)
names = [n for n in zipfile.ZipFile(wheel).namelist()
         if n.startswith("confluent_kafka.libs/librdkafka-") and n.endswith(".so.1")]
if len(names) != 1:
    sys.exit("setup: the wheel holds %d librdkafka libraries, not one" % len(names))
(out / pathlib.Path(names[0]).name).write_bytes(zipfile.ZipFile(wheel).read(names[0]))
PY
    lib="$(basename "$work"/lib/librdkafka-*.so.1)"
    chmod 0755 "$work/lib/$lib"
    ln -s "$lib" "$work/lib/librdkafka.so"
    rm -rf "$RDKAFKA_HOME"
    mkdir -p "$RDKAFKA_HOME"
    mv -T "$work/lib" "$RDKAFKA_HOME/lib"
    log "librdkafka: $RDKAFKA_HOME/lib/$lib"
  }
  if ! fetch_rdkafka; then
    echo "setup: warning: librdkafka $RDKAFKA_VERSION could not be fetched; the build uses" \
      "Debian's 2.0.2 (-DORDERPIPE_LIBRDKAFKA=bundled needs it)" >&2
  fi
fi
if [[ -f "$RDKAFKA_HOME/lib/librdkafka.so" ]]; then
  # CMake links whichever version this points to (cmake/OrderpipeDependencies.cmake).
  ln -sfn "librdkafka-$RDKAFKA_VERSION" "$ORDERPIPE_CACHE_DIR/librdkafka"
fi

# --- 5. Node.js, npm and the console page's packages -----------------------------------------
if command -v npm >/dev/null 2>&1; then
  log "npm: $(command -v npm) $(npm --version 2>/dev/null), node $(node --version 2>/dev/null)"
else
  NODE_LIST="$SCRIPT_DIR/packages/node.txt"
  mapfile -t NODE_PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$NODE_LIST")
  log "npm: not on PATH; installing Debian's ${NODE_PACKAGES[*]}"
  need_sudo
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${NODE_PACKAGES[@]}"
fi

WEB_DIR="$(cd "$SCRIPT_DIR/.." && pwd)/console/web"
if [[ -d "$WEB_DIR/node_modules" && -f "$WEB_DIR/node_modules/.package-lock.json" &&
      ! "$WEB_DIR/package-lock.json" -nt "$WEB_DIR/node_modules/.package-lock.json" ]]; then
  log "console page packages: present in $WEB_DIR/node_modules"
else
  log "console page packages: npm ci in $WEB_DIR (as package-lock.json pins them)"
  (cd "$WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "done in $((SECONDS - start_s)) s (then: scripts/build.sh, scripts/kafka.sh start, scripts/create-topics.sh)"
