#!/usr/bin/python3
"""Checks orderpipe's deployment artefacts against the code, without Docker or a cluster.

Usage: /usr/bin/python3 tests/deploy/check_deploy.py [REPOSITORY_ROOT]

What it reads: docker/Dockerfile, docker-compose.yml, docker/prometheus/prometheus.yml,
docker/grafana/ (provisioning and dashboards), deploy/k8s/*.yaml, scripts/setup.sh,
scripts/packages/*.txt, and, as the truth they must agree with, the C++ sources: the environment
variables each binary reads, the HTTP routes it serves, its default port, the metric families
(name, type, labels) it exports, the contract's topics (libs/contract) and orderpipe-topics'
options. It prints one line per problem, naming the file, and exits 1 if there is any (0 when
all is well, 2 when it cannot run). Python's standard library and PyYAML only (python3-yaml).

What it checks:
- packages: scripts/setup.sh installs scripts/packages/build.txt and test.txt (and reads
  node.txt), the Dockerfile's build stage build.txt and node.txt but not test.txt (what only the
  tests need, e.g. chromium), the runtime stage scripts/packages/runtime.txt; the build, node and
  test lists share no package; none of them spells a package list inline;
- Dockerfile: COPY sources exist and are not .dockerignored, every add_subdirectory() of the
  build is copied, copied binaries have an install() rule (and copied share/ directories an
  install(DIRECTORY) rule); the console page's npm packages are installed by `npm ci` from the
  lock file before the sources are copied and built, and .dockerignore keeps node_modules out;
  each image runs as a non-root user, sets only variables its binary reads, and a daemon's
  target's HTTP_PORT, EXPOSE and HEALTHCHECK (/readyz) agree with the code's default port and
  routes; a service with state has DATA_DIR, a stateless daemon (the console) none, and the
  console's CONSOLE_ASSETS_DIR is the directory its page is copied to;
- every daemon (the four services and the console) has an image target, a compose service, a
  Kubernetes workload and a Prometheus job;
- docker-compose.yml: build targets exist, published and probed ports equal HTTP_PORT, every
  environment variable is read by the binary (KAFKA_* pass through to librdkafka, except the
  broker-script ones and the properties orderpipe owns), URLs and bootstrap servers name
  services here on their ports, stop_grace_period > SHUTDOWN_TIMEOUT, the services start after
  topic-init, DATA_DIR is on a volume (not for a stateless daemon), scaled replicas have
  INSTANCE_ID=auto (and DATABASE_URL for the services that keep state), no shared named
  volume, no fixed host port and no more replicas than partitions; the console's
  CONSOLE_OPERATORS_FILE is on a read-only bind mount; 3 KRaft brokers with RF 3 and
  min.insync.replicas 2; orderpipe-topics is called with options it has;
- Prometheus: targets and DNS-SD ports equal the services' HTTP_PORT, every service is scraped,
  a scaled one through dns_sd_configs;
- Grafana: provisioned datasource uid, provider path mounted by compose, and every metric of
  every query exported by a service, with its labels, rate() only over counters and
  histograms, histogram_quantile() over _bucket by le;
- deploy/k8s: every file parses and is listed in kustomization.yaml, every document has
  apiVersion, kind and metadata.name in the namespace orderpipe; containers have an image
  built by compose, resources, uid 10001 non-root, variables their binary reads, container
  ports equal to HTTP_PORT, /livez and /readyz probes on it; terminationGracePeriodSeconds >
  SHUTDOWN_TIMEOUT; stateful services are StatefulSets with DATA_DIR on a volumeClaimTemplate,
  the single-instance ones exactly one replica unless DATABASE_URL comes from a Secret (then
  they scale out), scaled ones INSTANCE_ID from metadata.name; a stateless daemon (the console)
  is a Deployment without DATA_DIR, its CONSOLE_OPERATORS_FILE on a read-only Secret volume;
  Services select pods and target their ports; the autoscaler targets a StatefulSet that sets
  no replicas, with requests for its resource metrics and maxReplicas <= the partitions;
- topics: every topic name in any of these files is one of the contract's topics.

Run by CTest as `deploy_check` (tests/CMakeLists.txt).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
except ImportError:
    print("check_deploy: PyYAML is missing: install python3-yaml (scripts/setup.sh does)",
          file=sys.stderr)
    sys.exit(2)


# --- reporting ----------------------------------------------------------------------------------

class Report:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []
        self.checks = 0

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def check(self, ok: bool, where: Path | str, message: str) -> bool:
        """Counts one check; records `message` against `where` when it fails."""
        self.checks += 1
        if not ok:
            self.problems.append(f"{self.rel(where)}: {message}")
        return ok

    def problem(self, where: Path | str, message: str) -> None:
        self.check(False, where, message)


# --- durations ----------------------------------------------------------------------------------

def orderpipe_millis(text: str) -> int | None:
    """A duration as the services read it (libs/common EnvReader::millis): plain milliseconds,
    or a number with ms, s or m."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m)?\s*", str(text))
    if not m:
        return None
    n = int(m.group(1))
    return n * {"ms": 1, "s": 1000, "m": 60000, None: 1}[m.group(2)]


def go_duration_millis(text: str) -> int | None:
    """A Go-style duration as Compose reads stop_grace_period: 30s, 1m30s, 1500ms."""
    text = str(text).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600000, "m": 60000, "s": 1000, "ms": 1, "us": 0.001, "ns": 0.000001}
    return int(sum(float(n) * scale[u] for n, u in parts))


# --- facts from the C++ sources -----------------------------------------------------------------

CPP_SUFFIXES = {".cpp", ".hpp", ".h", ".cc"}

# Which sources each binary is built from (CMakeLists.txt files: the services link every library
# through orderpipe::runtime; the tools link only what is named here).
BINARY_SOURCES = {
    "order-service": ["libs", "order-service"],
    "inventory-service": ["libs", "inventory-service"],
    "notification-service": ["libs", "notification-service"],
    "analytics-service": ["libs", "analytics-service"],
    "orderpipe-console": ["libs", "console", "tools/dlqctl"],
    "fake-email-provider": ["tools/fake-email-provider", "libs/http", "libs/common"],
    "dlqctl": ["tools/dlqctl", "libs/common", "libs/contract", "libs/kafka"],
    "orderpipe-topics": ["tools/topics", "libs/common", "libs/contract", "libs/kafka"],
}

# docs/CONFIGURATION.md "Instances": local SQLite state, one instance each in this version.
SINGLE_INSTANCE = {"order-service", "inventory-service", "analytics-service"}

# The daemons on the service runtime (libs/runtime): an image, a compose service, a Kubernetes
# workload and a Prometheus job each. The stateless ones keep nothing in DATA_DIR (they never open
# a state): no volume, a Deployment rather than a StatefulSet.
SERVICES = {"order-service", "inventory-service", "notification-service", "analytics-service"}
STATELESS = {"orderpipe-console"}
DAEMONS = SERVICES | STATELESS

ENV_READ = re.compile(
    r"\benv\.(?:string|port|integer|millis|boolean|choice|required)\(\s*\"([A-Z][A-Z0-9_]*)\"")
GETENV = re.compile(r"\bgetenv\(\s*\"([A-Z][A-Z0-9_]*)\"\s*\)")
# A helper that reads the variable it is given (the console's
# `const auto url = [&](const char* name, std::string& into) { into = env.string(name, ...`).
ENV_HELPER = re.compile(r"\b(?:auto|void|[\w:<>]+)\s+(\w+)\s*=?\s*(?:\[[^\]]*\]\s*)?\("
                        r"[^)]*\b(?:const char\*|std::string_view|const std::string&)\s*(\w+)"
                        r"[^)]*\)[^{;]*\{")
ROUTE = re.compile(r"\b(?:route|add)\(\s*\"(GET|POST|PUT|DELETE|HEAD)\"\s*,\s*\"(/[^\"]*)\"")
FAMILY = re.compile(
    r"Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"\s*\)")
LABEL_KEY = re.compile(r"\{\s*\"([a-zA-Z_][a-zA-Z0-9_]*)\"\s*,")


def statement_after(text: str, start: int) -> str:
    """From `start` to the end of its expression: a `;` or `,` at depth 0, or the `)` that
    closes the parenthesis it is in."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth < 0:
                return text[start:i]
        elif ch in ";," and depth == 0:
            return text[start:i]
    return text[start:]


def block_after(text: str, start: int) -> str:
    """From `start`, just inside a `{`, to its closing `}`."""
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] == "{"
        depth -= text[i] == "}"
        if depth < 0:
            return text[start:i]
    return text[start:]


def add_keys(text: str, brace: int) -> set[str]:
    """Label keys of the label set starting at the `{` at index `brace`."""
    depth = 0
    for i in range(brace, min(len(text), brace + 600)):
        depth += text[i] == "{"
        depth -= text[i] == "}"
        if depth == 0:
            return set(LABEL_KEY.findall(text[brace:i + 1]))
    return set()


@dataclass
class Binary:
    name: str
    env: set[str] = field(default_factory=set)
    kafka_passthrough: bool = False
    routes: set[str] = field(default_factory=set)
    default_port: int | None = None


@dataclass
class Family:
    name: str
    type: str  # counter, gauge, histogram, summary
    labels: set[str]
    file: str


class Sources:
    """What the C++ code says, read once."""

    def __init__(self, root: Path, report: Report):
        self.root = root
        self.report = report
        self.text: dict[Path, str] = {}
        for top in ("libs", "order-service", "inventory-service", "notification-service",
                    "analytics-service", "console", "tools"):
            for p in sorted((root / top).rglob("*")):
                if p.suffix in CPP_SUFFIXES and p.is_file() and "node_modules" not in p.parts:
                    self.text[p] = p.read_text(encoding="utf-8", errors="replace")
        self.binaries = {name: self._binary(name, roots) for name, roots in
                         BINARY_SOURCES.items()}
        self.families = self._families()
        self.not_client_kafka, self.owned_properties = self._kafka_passthrough_rules()
        self.topics = self._topics()
        self.topic_tool = self._topic_tool()
        self.installed = self._installed_targets()
        self.installed_dirs = self._installed_directories()
        settings = root / "libs/runtime/include/orderpipe/runtime/settings.hpp"
        m = re.search(r"shutdown_timeout\{(\d+)\}", self.text.get(settings, ""))
        self.default_shutdown_ms = int(m.group(1)) if m else 10000

    def files_under(self, roots: list[str]) -> list[Path]:
        return [p for p in self.text if any(p.is_relative_to(self.root / r) for r in roots)]

    def _binary(self, name: str, roots: list[str]) -> Binary:
        b = Binary(name)
        for p in self.files_under(roots):
            t = self.text[p]
            b.env |= set(ENV_READ.findall(t)) | set(GETENV.findall(t))
            for h in ENV_HELPER.finditer(t):
                helper, param = h.group(1), h.group(2)
                body = block_after(t, h.end())
                if re.search(r"\benv\.(?:string|port|integer|millis|boolean|choice|required)\(\s*" +
                             re.escape(param) + r"\b", body):
                    b.env |= set(re.findall(r"\b" + re.escape(helper) +
                                            r"\(\s*\"([A-Z][A-Z0-9_]*)\"", t))
            b.kafka_passthrough |= re.search(r"(?:\.|->)kafka_passthrough\(", t) is not None
            b.routes |= {path for _, path in ROUTE.findall(t)}
            m = re.search(r"ServiceSettings::read\(\s*env\s*,\s*\"" + re.escape(name) +
                          r"\"\s*,\s*(\d+)\s*\)", t)
            if m:
                b.default_port = int(m.group(1))
        if name == "fake-email-provider":
            t = self.text.get(self.root / "tools/fake-email-provider/main.cpp", "")
            m = re.search(r"\bint port = (\d+);", t)
            b.default_port = int(m.group(1)) if m else None
        self.report.check(bool(b.env), self.root / roots[0],
                          f"found no environment variable read by {name}: has the code moved?")
        return b

    def _families(self) -> dict[str, Family]:
        out: dict[str, Family] = {}
        for p, t in self.text.items():
            found = list(FAMILY.finditer(t))
            if not found:
                continue
            # A family's labels are the keys of the series added to it: in the `.Add(...)`
            # chained to its Build...() statement, and in `<variable>.Add(...)` or
            # `<variable>->Add(...)` on the variable it was stored in (`auto& txns = ...`,
            # `lag_family_ = &...`, `created_(prometheus::Build...)`).
            variables: dict[str, str] = {}
            attributed: dict[str, set[str] | None] = {}
            for m in found:
                name = m.group(2)
                before = t[max(0, m.start() - 120):m.start()]
                v = re.search(r"(?:auto&\s+(\w+)\s*=\s*|(\w+)\s*=\s*&\s*|(\w+)\(\s*)"
                              r"(?:prometheus::)?$", before)
                var = next((g for g in v.groups() if g), None) if v else None
                if var:
                    variables[var.rstrip("_")] = name
                chain = statement_after(t, m.start())
                adds = [add_keys(chain, a.end() - 1) for a in re.finditer(r"\.Add\(\s*\{", chain)]
                attributed[name] = set().union(*adds) if adds else None
            unattributed: set[str] = set()
            for a in re.finditer(r"\b(\w+)\s*(?:\.|->)\s*Add\(\s*\{", t):
                keys = add_keys(t, a.end() - 1)
                owner = variables.get(a.group(1).rstrip("_"))
                if owner is None:
                    unattributed |= keys
                elif attributed.get(owner) is None:
                    attributed[owner] = set(keys)
                else:
                    attributed[owner] |= keys
            for m in found:
                kind, name = m.group(1), m.group(2)
                labels = attributed.get(name)
                # Series added through a helper's parameter (analytics' money(family, ...)):
                # the file's other label keys.
                labels = labels if labels is not None else unattributed
                if name in out:  # registered in several places (kafka_transactions_total)
                    labels = labels | out[name].labels
                out[name] = Family(name, kind.lower(), labels, self.report.rel(p))
        self.report.check(len(out) >= 10, self.root / "libs",
                          f"found only {len(out)} metric families in the sources")
        return out

    def _kafka_passthrough_rules(self) -> tuple[set[str], set[str]]:
        t = self.text.get(self.root / "libs/common/src/config.cpp", "")
        not_client: set[str] = set()
        owned: set[str] = set()
        m = re.search(r"kNotClientProperties\s*=\s*\{(.*?)\};", t, re.S)
        if m:
            not_client = set(re.findall(r"\"(KAFKA_[A-Z0-9_]+)\"", m.group(1)))
        m = re.search(r"kOwnedProperties\s*=\s*\{(.*?)\n\};", t, re.S)
        if m:
            owned = set(re.findall(r"\{\s*\"([a-z.]+)\"\s*,", m.group(1)))
        return not_client, owned

    def _topics(self) -> set[str]:
        hpp = self.root / "libs/contract/include/orderpipe/contract/topics.hpp"
        cpp = self.root / "libs/contract/src/topics.cpp"
        consts = dict(re.findall(r"\b(k[A-Za-z]+)\s*=\s*\"([a-z.]+)\"", self.text.get(hpp, "")))
        suffix = consts.pop("kDlqSuffix", ".dlq")
        t = self.text.get(cpp, "")
        topics: set[str] = set()
        m = re.search(r"all_topics\(\)\s*\{(.*?)\n\}", t, re.S)
        if not m:
            self.report.problem(cpp, "cannot find all_topics() to read the contract's topics")
            return set(consts.values())
        body = m.group(1)
        # main_topics() plus the constants all_topics() adds by name ...
        mm = re.search(r"main_topics\(\)\s*\{(.*?)\n\}", t, re.S)
        for ident in re.findall(r"topic::(k[A-Za-z]+)", mm.group(1) if mm else ""):
            topics.add(consts[ident])
        loop = re.search(r"for\s*\(std::string_view consumed\s*:\s*\{(.*?)\}\)", body, re.S)
        head = body[:loop.start()] if loop else body
        for ident in re.findall(r"topic::(k[A-Za-z]+)", head):
            topics.add(consts[ident])
        # ... and dlq_topic_for(consumed) of each topic of the loop.
        for ident in re.findall(r"topic::(k[A-Za-z]+)", loop.group(1) if loop else ""):
            name = consts[ident]
            topics.add(consts["kNotificationsDlq"] if ident == "kNotificationsRequests"
                       else name + suffix)
        self.report.check(len(topics) >= 8, cpp, f"read only {len(topics)} topics: {topics}")
        return topics

    def _topic_tool(self) -> dict:
        t = self.text.get(self.root / "tools/topics/main.cpp", "")
        m = re.search(r"\bint partitions = (\d+);", t)
        return {"options": set(re.findall(r"add_option\(\s*\"(--[a-z-]+)\"", t)),
                "subcommands": set(re.findall(r"add_subcommand\(\s*\"([a-z-]+)\"", t)),
                "default_partitions": int(m.group(1)) if m else 1}

    def _installed_directories(self) -> set[str]:
        """DESTINATIONs of install(DIRECTORY ...) rules (console/web: the console's page)."""
        out: set[str] = set()
        for p in [self.root / "CMakeLists.txt", *self.root.glob("*/CMakeLists.txt"),
                  *self.root.glob("*/*/CMakeLists.txt")]:
            t = re.sub(r"#.*", "", p.read_text(encoding="utf-8"))  # not commented-out rules
            out |= {d.strip('"').rstrip("/") for d in
                    re.findall(r"install\(\s*DIRECTORY\s+[^)]*?\bDESTINATION\s+(\S+?)\s*\)", t)}
        return out

    def _installed_targets(self) -> set[str]:
        """Executables with a CMake install() rule: named ones, and every orderpipe_service()
        when that function installs its daemon (cmake/OrderpipeWarnings.cmake)."""
        out: set[str] = set()
        services: set[str] = set()
        service_installs = False
        for p in [self.root / "CMakeLists.txt", *self.root.glob("cmake/*.cmake"),
                  *self.root.glob("*/CMakeLists.txt"), *self.root.glob("*/*/CMakeLists.txt")]:
            t = p.read_text(encoding="utf-8")
            out |= set(re.findall(r"install\(TARGETS\s+([A-Za-z0-9_-]+)", t))
            services |= set(re.findall(r"^\s*orderpipe_service\(\s*([A-Za-z0-9_-]+)", t, re.M))
            m = re.search(r"function\(orderpipe_service\b(.*?)endfunction", t, re.S)
            service_installs |= bool(m and "install(TARGETS ${name}" in m.group(1))
        return out | (services if service_installs else set())

    def env_problem(self, binary: str, name: str) -> str | None:
        """None if `binary` reads the variable `name`, else why not."""
        b = self.binaries[binary]
        if name in b.env:
            return None
        if name.startswith("KAFKA_") and b.kafka_passthrough:
            if name in self.not_client_kafka:
                return (f"{name} is not passed to librdkafka (a broker-script variable) and "
                        f"{binary} does not read it")
            prop = name[6:].lower().replace("_", ".")
            if prop in self.owned_properties:
                return f"{name} sets {prop}, which orderpipe owns: {binary} refuses to start"
            return None
        return f"{binary} does not read {name} (not in its sources: {BINARY_SOURCES[binary]})"


# --- the Dockerfile -----------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instr: str) -> list[str]:
        return [a for i, a in self.instructions if i == instr]


class Dockerfile:
    def __init__(self, path: Path):
        self.path = path
        self.stages: dict[str, Stage] = {}
        self.order: list[Stage] = []
        logical, buf = [], ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if not buf and line.lstrip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                buf += line.rstrip()[:-1] + " "
                continue
            if buf and line.lstrip().startswith("#"):
                continue  # a comment inside a continued instruction
            logical.append(buf + line)
            buf = ""
        current: Stage | None = None
        for line in logical:
            if not line.strip():
                continue
            instr, _, args = line.strip().partition(" ")
            instr = instr.upper()
            if instr == "FROM":
                m = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
                base, name = (m.group(1), m.group(2)) if m else (args.strip(), None)
                current = Stage(name or f"#{len(self.order)}", base)
                self.order.append(current)
                self.stages[current.name] = current
            elif current is not None:
                current.instructions.append((instr, args.strip()))

    def env(self, stage: str) -> dict[str, str]:
        """ENV of a stage, inherited from the stages it is built FROM."""
        s = self.stages[stage]
        out = self.env(s.base) if s.base in self.stages else {}
        for args in s.all("ENV"):
            words = shlex.split(args)
            if words and "=" not in words[0]:
                out[words[0]] = " ".join(words[1:])
            else:
                for w in words:
                    k, _, v = w.partition("=")
                    out[k] = v
        return out

    def entrypoint_binary(self, stage: str) -> str | None:
        s = self.stages.get(stage)
        while s is not None:
            eps = s.all("ENTRYPOINT")
            if eps:
                try:
                    argv = json.loads(eps[-1])
                except json.JSONDecodeError:
                    argv = shlex.split(eps[-1])
                return Path(argv[0]).name if argv else None
            s = self.stages.get(s.base)
        return None


def read_package_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def check_packages_and_dockerfile(root: Path, r: Report, src: Sources) -> Dockerfile | None:
    build_txt = root / "scripts/packages/build.txt"
    runtime_txt = root / "scripts/packages/runtime.txt"
    # Node.js and npm (the console's page is compiled by the build), and what only the tests need
    # (the browser test's chromium): a development machine installs both, the image build only
    # node.txt.
    node_txt = root / "scripts/packages/node.txt"
    test_txt = root / "scripts/packages/test.txt"
    lists = {}
    for p in (build_txt, runtime_txt, node_txt, test_txt):
        if not r.check(p.is_file(), p, "missing"):
            continue
        pkgs = read_package_list(p)
        lists[p] = pkgs
        r.check(bool(pkgs), p, "lists no package")
        for pkg in pkgs:
            r.check(PACKAGE_NAME.fullmatch(pkg) is not None, p,
                    f"'{pkg}' is not one Debian package name (one package a line)")
        dups = {x for x in pkgs if pkgs.count(x) > 1}
        r.check(not dups, p, f"lists {sorted(dups)} more than once")
    if build_txt in lists:
        r.check("python3-yaml" in lists[build_txt], build_txt,
                "python3-yaml is missing (tests/deploy/check_deploy.py needs PyYAML)")
    if runtime_txt in lists:
        for need in ("ca-certificates", "curl"):
            r.check(need in lists[runtime_txt], runtime_txt,
                    f"{need} is missing (TLS trust anchors / the containers' health checks)")
    if node_txt in lists:
        for need in ("nodejs", "npm"):
            r.check(need in lists[node_txt], node_txt,
                    f"{need} is missing (the build compiles the console's TypeScript)")
    # A package is in one of the lists a development machine installs: the image build installs
    # build.txt and node.txt, not test.txt, so a test-only package must be in test.txt alone.
    dev_lists = [q for q in (build_txt, node_txt, test_txt) if q in lists]
    for i, a in enumerate(dev_lists):
        for b in dev_lists[i + 1:]:
            both = set(lists[a]) & set(lists[b])
            r.check(not both, b, f"lists {sorted(both)}, which {r.rel(a)} lists too")
    all_pkgs = set().union(*lists.values()) if lists else set()

    # scripts/setup.sh reads build.txt and spells no package itself.
    setup = root / "scripts/setup.sh"
    if r.check(setup.is_file(), setup, "missing"):
        code = "\n".join(l for l in setup.read_text(encoding="utf-8").splitlines()
                         if not l.lstrip().startswith("#"))
        for listfile in ("build.txt", "test.txt", "node.txt"):
            r.check(f"packages/{listfile}" in code, setup,
                    f"does not read scripts/packages/{listfile}")
        for m in re.finditer(r"\b[A-Za-z_][A-Za-z0-9_]*=\(([^)]*)\)", code):
            inline = set(m.group(1).split()) & all_pkgs
            r.check(len(inline) < 2, setup,
                    f"an inline package list ({', '.join(sorted(inline))}): keep them in "
                    f"scripts/packages/build.txt")
        for line in code.splitlines():
            if "apt-get install" in line:
                inline = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9+.-]*", line)) & all_pkgs
                r.check(not inline, setup,
                        f"apt-get install names {sorted(inline)} inline: use the package list")

    path = root / "docker/Dockerfile"
    if not r.check(path.is_file(), path, "missing"):
        return None
    df = Dockerfile(path)
    # The build stage installs build.txt and node.txt, the runtime stage runtime.txt; no stage
    # installs test.txt; no apt-get install spells a package.
    def installed_lists(s: Stage) -> set[str]:
        """The package lists a stage copies in and apt-get installs from."""
        out = set()
        installs = [a for a in s.all("RUN") if "apt-get install" in a]
        for a in s.all("COPY"):
            words = [w for w in a.split() if not w.startswith("--")]
            if "--from=" in a or len(words) < 2:
                continue
            for source in words[:-1]:
                if not source.startswith("scripts/packages/"):
                    continue
                dst = words[-1]
                dst = dst + Path(source).name if dst.endswith("/") else dst
                if any(dst in run for run in installs):
                    out.add(source)
        return out

    for base, wanted in (("debian:bookworm", ["scripts/packages/build.txt",
                                              "scripts/packages/node.txt"]),
                         ("debian:bookworm-slim", ["scripts/packages/runtime.txt"])):
        stages = [s for s in df.order if s.base == base]
        if not r.check(bool(stages), path, f"no stage FROM {base}"):
            continue
        s = stages[0]
        got = installed_lists(s)
        for listfile in wanted:
            r.check(listfile in got, path,
                    f"stage {s.name} (FROM {base}) does not COPY {listfile} and apt-get "
                    f"install from it")
    for s in df.order:
        r.check("scripts/packages/test.txt" not in " ".join(s.all("COPY")), path,
                f"stage {s.name} copies scripts/packages/test.txt: what only the tests need "
                f"(chromium, ...) stays out of the images")
    for s in df.order:
        for a in s.all("RUN"):
            if "apt-get install" in a:
                inline = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9+.-]*", a)) & all_pkgs
                r.check(not inline, path, f"stage {s.name}: apt-get install names "
                        f"{sorted(inline)} inline: use scripts/packages/*.txt")
                r.check("--no-install-recommends" in a, path,
                        f"stage {s.name}: apt-get install without --no-install-recommends")
        for a in s.all("COPY"):
            m = re.search(r"--from=build\s+/opt/orderpipe/bin/(\S+)", a)
            if m:
                r.check(m.group(1) in src.installed, path,
                        f"stage {s.name} copies {m.group(1)}, which no CMake install() rule "
                        f"installs")
            m = re.search(r"--from=build\s+/opt/orderpipe/(share/\S+)", a)
            if m:
                r.check(m.group(1).rstrip("/") in src.installed_dirs, path,
                        f"stage {s.name} copies /opt/orderpipe/{m.group(1)}, which no CMake "
                        f"install(DIRECTORY ... DESTINATION {m.group(1).rstrip('/')}) installs")

    # The build stage copies every directory the top-level CMakeLists.txt adds, and nothing that
    # is missing or kept out of the build context by .dockerignore.
    ignored = []
    dockerignore = root / ".dockerignore"
    if dockerignore.is_file():
        ignored = [l.strip().rstrip("/") for l in dockerignore.read_text().splitlines()
                   if l.strip() and not l.lstrip().startswith("#")]
    copied_dirs: set[str] = set()
    for s in df.order:
        for a in s.all("COPY"):
            words = [w for w in a.split() if not w.startswith("--")]
            if "--from=" in a or len(words) < 2:
                continue
            for source in words[:-1]:
                source = source.rstrip("/")
                copied_dirs.add(source)
                r.check((root / source).exists(), path,
                        f"stage {s.name}: COPY {source}: no such file in the repository")
                hit = [pat for pat in ignored if fnmatch.fnmatch(source, pat) or
                       fnmatch.fnmatch(source.split("/")[0], pat)]
                r.check(not hit, path, f"stage {s.name}: COPY {source}, which .dockerignore "
                                       f"keeps out of the context ({hit})")
    # The console's page is compiled by the build with console/web/node_modules: the build stage
    # runs `npm ci` from the lock file in /src/console/web, after copying package.json and the
    # lock file and before the sources (a source change keeps the npm layer) and the build.
    # .dockerignore keeps a host's node_modules out of the context (`COPY console/` would
    # replace the installed ones).
    if (root / "console/web/package-lock.json").is_file():
        build = next((s for s in df.order if s.base == "debian:bookworm"), None)
        if build is not None:
            steps = build.instructions
            npm = [i for i, (ins, a) in enumerate(steps) if ins == "RUN" and "npm ci" in a]
            cmake = [i for i, (ins, a) in enumerate(steps) if ins == "RUN" and "cmake" in a]
            lock = [i for i, (ins, a) in enumerate(steps) if ins == "COPY" and
                    "console/web/package-lock.json" in a.split() and
                    "console/web/package.json" in a.split()]
            sources = [i for i, (ins, a) in enumerate(steps) if ins == "COPY" and
                       any(w.rstrip("/") == "console" for w in a.split()[:-1])]
            if r.check(bool(npm), path, f"stage {build.name}: no `npm ci` (console/web's "
                                        f"packages, which the build compiles the page with)"):
                n, run = npm[0], steps[npm[0]][1]
                r.check(re.search(r"(?:cd|--prefix)\s+/src/console/web\b", run) is not None, path,
                        f"stage {build.name}: `npm ci` does not run in /src/console/web")
                r.check("--no-audit" in run and "--no-fund" in run, path,
                        f"stage {build.name}: `npm ci` without --no-audit --no-fund")
                r.check(bool(lock) and lock[0] < n, path,
                        f"stage {build.name}: console/web/package.json and package-lock.json "
                        f"are not copied before `npm ci`")
                r.check(not sources or sources[0] > n, path,
                        f"stage {build.name}: console/ is copied before `npm ci`: every source "
                        f"change would reinstall the npm packages")
                r.check(not cmake or cmake[0] > n, path,
                        f"stage {build.name}: the build runs before `npm ci`")
            r.check("**/node_modules" in ignored, dockerignore,
                    "does not keep **/node_modules out of the build context")

    top = (root / "CMakeLists.txt").read_text(encoding="utf-8")
    tests_off = any("-DORDERPIPE_BUILD_TESTS=OFF" in a for s in df.order for a in s.all("RUN"))
    for sub in re.findall(r"add_subdirectory\(\s*([^\s)]+)", top):
        if sub == "tests" and tests_off:
            continue
        r.check(any(sub == d or sub.startswith(d + "/") for d in copied_dirs), path,
                f"the build adds {sub}/ (CMakeLists.txt), which the build stage does not COPY")

    # Every image target: its binary, a non-root user; a service also its port and health check.
    for s in df.order:
        if s.base not in df.stages or s.name.startswith("#"):
            continue
        binary = df.entrypoint_binary(s.name)
        if binary not in src.binaries:
            continue
        b = src.binaries[binary]
        users = [u for st in (df.stages.get(s.base), s) if st for u in st.all("USER")]
        r.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), path,
                f"target {s.name} does not run as a non-root USER")
        env = df.env(s.name)
        for name in env:
            why = src.env_problem(binary, name)
            r.check(why is None, path, f"target {s.name}: ENV {name}: {why}")
        stops = s.all("STOPSIGNAL")
        r.check(not stops or stops[-1] == "SIGTERM", path,
                f"target {s.name}: STOPSIGNAL {stops[-1] if stops else ''}: the binaries stop "
                f"gracefully on SIGTERM")
        if b.default_port is None:
            continue  # a CLI
        port = env.get("HTTP_PORT")
        r.check(port == str(b.default_port), path,
                f"target {s.name}: ENV HTTP_PORT={port}, the code's default is "
                f"{b.default_port} (docs/CONFIGURATION.md)")
        exposed = {e.split("/")[0] for a in s.all("EXPOSE") for e in a.split()}
        r.check(exposed == {str(port)}, path,
                f"target {s.name}: EXPOSE {sorted(exposed)} is not HTTP_PORT {port}")
        hcs = s.all("HEALTHCHECK")
        if r.check(bool(hcs), path, f"target {s.name}: no HEALTHCHECK"):
            m = re.search(r"https?://[^/:\s\"]+:([^/\s\"]+)(/[A-Za-z0-9_/-]*)", hcs[-1])
            if r.check(m is not None, path, f"target {s.name}: HEALTHCHECK has no URL"):
                hport, hpath = m.group(1), m.group(2)
                r.check(hport in ("$HTTP_PORT", "${HTTP_PORT}", str(port)), path,
                        f"target {s.name}: HEALTHCHECK port {hport} is not HTTP_PORT {port}")
                r.check(hpath in b.routes, path,
                        f"target {s.name}: HEALTHCHECK path {hpath} is not a route {binary} "
                        f"serves ({sorted(b.routes)})")
                if binary in DAEMONS:
                    r.check(hpath == "/readyz", path,
                            f"target {s.name}: HEALTHCHECK on {hpath}; a daemon's is /readyz")
        if binary in STATELESS:
            r.check("DATA_DIR" not in env, path,
                    f"target {s.name}: sets DATA_DIR, but {binary} keeps no state")
        elif binary != "fake-email-provider":
            r.check(env.get("DATA_DIR", "").startswith("/"), path,
                    f"target {s.name}: no absolute DATA_DIR")
        if "CONSOLE_ASSETS_DIR" in b.env:
            # The binary's default is the build tree's asset directory: the image names the
            # directory it copies the installed page to.
            dirs = {a.split()[-1].rstrip("/") for a in s.all("COPY")
                    if re.search(r"--from=build\s+/opt/orderpipe/share/", a)}
            r.check(bool(dirs) and env.get("CONSOLE_ASSETS_DIR", "").rstrip("/") in dirs, path,
                    f"target {s.name}: CONSOLE_ASSETS_DIR={env.get('CONSOLE_ASSETS_DIR')} is not "
                    f"the directory its page is copied to from the build stage "
                    f"({sorted(dirs) or 'none'})")
    for d in sorted(DAEMONS):
        r.check(any(df.entrypoint_binary(s.name) == d for s in df.order
                    if not s.name.startswith("#")), path, f"no image target runs {d}")
    return df


# --- topics named anywhere ----------------------------------------------------------------------

def strings_in(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings_in(v)]
    return []


def check_topics(r: Report, src: Sources, where: Path, values: list[str]) -> None:
    heads = sorted({t.split(".")[0] for t in src.topics})
    if not heads:
        return
    pattern = re.compile(r"(?<![\w.-])((?:" + "|".join(map(re.escape, heads)) +
                         r")\.[a-z0-9_.-]*[a-z0-9])(?![\w-])")
    for value in values:
        for name in pattern.findall(value):
            r.check(name in src.topics, where,
                    f"names the topic '{name}', which is not one of the contract's topics "
                    f"(libs/contract/src/topics.cpp): {sorted(src.topics)}")


# --- docker-compose.yml -------------------------------------------------------------------------

def env_dict(environment) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    out = {}
    for item in environment:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def container_ports(ports) -> list[tuple[str | None, str]]:
    """(published, target) of each entry of a service's `ports`."""
    out = []
    for p in ports or []:
        if isinstance(p, dict):
            out.append((str(p.get("published")) if p.get("published") else None,
                        str(p.get("target"))))
            continue
        spec = str(p).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            out.append((None, parts[0]))
        else:
            out.append((parts[-2], parts[-1]))
    return out


@dataclass
class ComposeService:
    name: str
    spec: dict
    binary: str | None
    env: dict[str, str]

    @property
    def http_port(self) -> str | None:
        return self.env.get("HTTP_PORT")

    @property
    def replicas(self) -> int:
        return int((self.spec.get("deploy") or {}).get("replicas", 1))


def option_values(argv: list[str], name: str) -> list[str]:
    out = []
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith(name + "="):
            out.append(a.split("=", 1)[1])
    return out


def check_topic_tool_argv(r: Report, src: Sources, where: Path, who: str,
                          argv: list[str]) -> int:
    """Checks orderpipe-topics arguments; returns the partitions they create."""
    tool = src.topic_tool
    r.check(bool(argv) and argv[0] in tool["subcommands"], where,
            f"{who}: orderpipe-topics subcommand {argv[:1]} is not one of "
            f"{sorted(tool['subcommands'])}")
    for a in argv[1:]:
        if a.startswith("--"):
            opt = a.split("=", 1)[0]
            r.check(opt in tool["options"], where,
                    f"{who}: orderpipe-topics has no option {opt} (tools/topics/main.cpp: "
                    f"{sorted(tool['options'])})")
    parts = option_values(argv, "--partitions")
    return int(parts[-1]) if parts and parts[-1].isdigit() else tool["default_partitions"]


def check_compose(root: Path, r: Report, src: Sources, df: Dockerfile | None):
    path = root / "docker-compose.yml"
    if not r.check(path.is_file(), path, "missing"):
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        r.problem(path, f"does not parse: {e}")
        return None
    services_raw = (doc or {}).get("services") or {}
    r.check(bool(services_raw), path, "has no services")
    check_topics(r, src, path, strings_in(doc))

    services: dict[str, ComposeService] = {}
    for name, spec in services_raw.items():
        spec = spec or {}
        build = spec.get("build")
        binary, image_env = None, {}
        if isinstance(build, dict) and df is not None:
            target = build.get("target")
            dockerfile = build.get("dockerfile", "Dockerfile")
            r.check((root / build.get("context", ".") / dockerfile).resolve() == df.path.resolve(),
                    path, f"service {name}: builds {dockerfile}, not docker/Dockerfile")
            if r.check(target in df.stages, path,
                       f"service {name}: build target '{target}' is not a `FROM ... AS "
                       f"{target}` stage of docker/Dockerfile"):
                binary = df.entrypoint_binary(target)
                image_env = df.env(target)
        elif build is not None:
            r.problem(path, f"service {name}: build has no target (docker/Dockerfile has one "
                            f"per image)")
        env = dict(image_env)
        env.update(env_dict(spec.get("environment")))
        services[name] = ComposeService(name, spec, binary, env)

    for d in sorted(DAEMONS):
        r.check(any(s.binary == d for s in services.values()), path,
                f"no service runs {d} (docker/Dockerfile's target for it)")

    brokers = [s for s in services.values()
               if str(s.spec.get("image", "")).startswith("apache/kafka:")]
    broker_names = {b.name for b in brokers}
    check_brokers(r, path, brokers)

    # topic-init: the topic tool with arguments it has, RF no more than the brokers.
    partitions = src.topic_tool["default_partitions"]
    topic_inits = [s for s in services.values() if s.binary == "orderpipe-topics"]
    if r.check(bool(topic_inits), path, "no service runs orderpipe-topics (topic-init)"):
        ti = topic_inits[0]
        argv = [str(a) for a in (ti.spec.get("command") or [])]
        if isinstance(ti.spec.get("command"), str):
            argv = shlex.split(ti.spec["command"])
        partitions = check_topic_tool_argv(r, src, path, f"service {ti.name}", argv)
        rf = option_values(argv, "--replication-factor")
        r.check(rf == ["3"], path, f"service {ti.name}: --replication-factor {rf}: the compose "
                                   f"cluster has RF 3 (SPEC §3)")
        for bs in option_values(argv, "--bootstrap"):
            for hp in bs.split(","):
                r.check(hp.split(":")[0] in broker_names, path,
                        f"service {ti.name}: --bootstrap {hp} is not a broker of this file")
        deps = ti.spec.get("depends_on") or {}
        r.check(broker_names <= set(deps), path,
                f"service {ti.name}: does not wait for every broker")

    for s in services.values():
        if s.binary is None:
            continue
        b = src.binaries.get(s.binary)
        if b is None:
            continue
        where = f"service {s.name} ({s.binary})"
        for var in env_dict(s.spec.get("environment")):
            why = src.env_problem(s.binary, var)
            r.check(why is None, path, f"{where}: environment {var}: {why}")
        for hp in s.env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(","):
            if hp:
                r.check(hp.split(":")[0] in broker_names, path,
                        f"{where}: KAFKA_BOOTSTRAP_SERVERS names {hp}, not a broker here")
        for var, value in s.env.items():
            m = re.match(r"https?://([^/:]+):(\d+)", value)
            if m and m.group(1) in services and services[m.group(1)].binary is not None:
                # One of ours: it listens on its HTTP_PORT (third-party images have their own).
                other = services[m.group(1)]
                r.check(other.http_port == m.group(2), path,
                        f"{where}: {var} uses port {m.group(2)} of {other.name}, which "
                        f"listens on HTTP_PORT {other.http_port}")
        if b.default_port is None:
            continue  # a CLI: no port, no health
        port = s.http_port
        for published, target in container_ports(s.spec.get("ports")):
            r.check(target == port, path,
                    f"{where}: publishes container port {target}, but HTTP_PORT is {port}")
            if s.replicas > 1 and published is not None:
                r.check("-" in published, path,
                        f"{where}: {s.replicas} replicas cannot share the fixed host port "
                        f"{published}: publish a range or none")
        hc = s.spec.get("healthcheck")
        if isinstance(hc, dict) and hc.get("test"):
            test = " ".join(map(str, hc["test"])) if isinstance(hc["test"], list) else hc["test"]
            for hport in re.findall(r"https?://[^/:\s]+:([^/\s\"]+)", test):
                r.check(hport in (port, "$HTTP_PORT", "${HTTP_PORT}", "$$HTTP_PORT"), path,
                        f"{where}: healthcheck probes port {hport}, HTTP_PORT is {port}")
        if "SHUTDOWN_TIMEOUT" not in b.env:
            continue
        # A daemon of the pipeline.
        shutdown = orderpipe_millis(s.env.get("SHUTDOWN_TIMEOUT", "")) \
            if s.env.get("SHUTDOWN_TIMEOUT") else src.default_shutdown_ms
        grace = go_duration_millis(s.spec.get("stop_grace_period", "10s"))
        r.check(shutdown is not None and grace is not None and grace > shutdown, path,
                f"{where}: stop_grace_period {s.spec.get('stop_grace_period', '10s (default)')}"
                f" must exceed SHUTDOWN_TIMEOUT {s.env.get('SHUTDOWN_TIMEOUT', '10s (default)')}")
        deps = s.spec.get("depends_on") or {}
        cond = deps.get("topic-init", {}).get("condition") if isinstance(deps, dict) else None
        r.check(cond == "service_completed_successfully", path,
                f"{where}: does not start after topic-init (depends_on: topic-init: condition: "
                f"service_completed_successfully)")
        data_dir = s.env.get("DATA_DIR")
        mounts = [str(v) if not isinstance(v, dict) else f"{v.get('source', '')}:{v.get('target')}"
                  for v in s.spec.get("volumes") or []]
        targets = {m.split(":")[1] if ":" in m else m: (m.split(":")[0] if ":" in m else None)
                   for m in mounts}
        ops = s.env.get("CONSOLE_OPERATORS_FILE")
        if ops:
            # A file of the host, mounted read-only: its directory (a missing file must not be
            # created by Docker as a directory).
            ro = [m for m in mounts if m.split(":")[0].startswith(".") and m.endswith(":ro")]
            r.check(any(ops.startswith(m.split(":")[1].rstrip("/") + "/") for m in ro), path,
                    f"{where}: CONSOLE_OPERATORS_FILE {ops} is not in a read-only bind mount")
        if s.binary in STATELESS:
            # Nothing to keep: no DATA_DIR, and no volume but read-only bind mounts.
            r.check(not data_dir, path, f"{where}: keeps no state, but sets DATA_DIR")
            r.check(all(m.split(":")[0].startswith(".") and m.endswith(":ro") for m in mounts),
                    path, f"{where}: keeps no state: a volume other than a read-only bind "
                          f"mount ({mounts})")
            continue
        r.check(data_dir in targets, path,
                f"{where}: no volume on DATA_DIR {data_dir}: its state would be lost with the "
                f"container")
        if s.replicas > 1:
            r.check(s.binary not in SINGLE_INSTANCE or bool(s.env.get("DATABASE_URL")), path,
                    f"{where}: {s.replicas} replicas, but it keeps local state and runs as one "
                    f"instance without DATABASE_URL (docs/CONFIGURATION.md \"Instances\")")
            r.check(targets.get(data_dir) is None, path,
                    f"{where}: {s.replicas} replicas share the named volume on DATA_DIR; the "
                    f"directory is locked by one process")
            r.check(s.env.get("INSTANCE_ID") == "auto", path,
                    f"{where}: {s.replicas} replicas need distinct INSTANCE_IDs: set "
                    f"INSTANCE_ID=auto")
            r.check(s.replicas <= partitions, path,
                    f"{where}: {s.replicas} replicas, but topic-init creates {partitions} "
                    f"partitions (the rest would idle)")
    return services


def check_brokers(r: Report, path: Path, brokers: list[ComposeService]) -> None:
    if not r.check(len(brokers) == 3, path, f"{len(brokers)} Kafka brokers, SPEC §3 says 3"):
        return
    expected = {"KAFKA_DEFAULT_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
                "KAFKA_PROCESS_ROLES": "broker,controller"}
    ids = set()
    for b in brokers:
        env = env_dict(b.spec.get("environment"))
        for k, v in expected.items():
            r.check(env.get(k) == v, path, f"broker {b.name}: {k}={env.get(k)}, expected {v}")
        for k in ("KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LISTENERS",
                  "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                  "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_INTER_BROKER_LISTENER_NAME",
                  "CLUSTER_ID"):
            r.check(bool(env.get(k)), path, f"broker {b.name}: {k} is not set")
        ids.add(env.get("KAFKA_NODE_ID"))
        voters = {v.split("@")[0]: v.split("@")[1].split(":")[0]
                  for v in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",") if "@" in v}
        r.check(voters.get(env.get("KAFKA_NODE_ID")) == b.name, path,
                f"broker {b.name}: its node id {env.get('KAFKA_NODE_ID')} is not a voter at "
                f"{b.name} in KAFKA_CONTROLLER_QUORUM_VOTERS")
        r.check(len(voters) == 3, path, f"broker {b.name}: the quorum is not the 3 brokers")
    r.check(len(ids) == 3, path, f"the brokers' KAFKA_NODE_IDs are not distinct: {ids}")


# --- Prometheus and Grafana ---------------------------------------------------------------------

def check_prometheus(root: Path, r: Report, src: Sources, services) -> None:
    path = root / "docker/prometheus/prometheus.yml"
    if not r.check(path.is_file(), path, "missing") or services is None:
        return
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        r.problem(path, f"does not parse: {e}")
        return
    check_topics(r, src, path, strings_in(doc))
    scraped: dict[str, str] = {}
    for job in doc.get("scrape_configs") or []:
        jn = job.get("job_name")
        r.check(job.get("metrics_path", "/metrics") == "/metrics", path,
                f"job {jn}: metrics_path is not /metrics")
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                host, _, port = str(t).rpartition(":")
                if host in services:
                    r.check(services[host].http_port == port, path,
                            f"job {jn}: target {t}, but {host}'s HTTP_PORT is "
                            f"{services[host].http_port}")
                    r.check(services[host].replicas == 1, path,
                            f"job {jn}: a static target reaches one of {host}'s "
                            f"{services[host].replicas} replicas; use dns_sd_configs type A")
                    scraped[host] = jn
                else:
                    r.problem(path, f"job {jn}: target {t} is not a compose service")
        for dc in job.get("dns_sd_configs") or []:
            for n in dc.get("names") or []:
                if r.check(n in services, path, f"job {jn}: DNS name {n} is not a service"):
                    r.check(dc.get("type") == "A", path, f"job {jn}: dns_sd type is not A")
                    r.check(str(dc.get("port")) == services[n].http_port, path,
                            f"job {jn}: port {dc.get('port')}, but {n}'s HTTP_PORT is "
                            f"{services[n].http_port}")
                    scraped[n] = jn
    for s in services.values():
        if s.http_port and s.binary:
            r.check(s.name in scraped, path, f"service {s.name} (HTTP_PORT {s.http_port}) is "
                                             f"not scraped")


PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "abs", "ceil", "floor", "round", "clamp", "clamp_min",
    "clamp_max", "vector", "scalar", "time", "label_replace", "label_join", "absent",
    "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "quantile_over_time", "changes", "resets", "sort",
    "sort_desc", "exp", "ln", "log2", "log10", "sqrt", "predict_linear", "holt_winters",
    "timestamp", "inf", "nan", "e",
}
SERVER_LABELS = {"job", "instance"}  # added by Prometheus when it scrapes


def promql_metrics(expr: str) -> tuple[list[str], list[tuple[str | None, str]]]:
    """Metric names of a PromQL expression, and (metric or None, label) pairs it uses."""
    labels: list[tuple[str | None, str]] = []
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", e):
        for lm in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", m.group(2)):
            labels.append((m.group(1), lm.group(1)))
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels += [(None, l.strip()) for l in m.group(1).split(",") if l.strip()]
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    names = [n for n in re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])", e)
             if n not in PROMQL_WORDS]
    return names, labels


def check_grafana(root: Path, r: Report, src: Sources, compose: dict | None) -> None:
    prov = root / "docker/grafana/provisioning"
    uids = set()
    for p in sorted(prov.glob("datasources/*.y*ml")):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            r.problem(p, f"does not parse: {e}")
            continue
        for ds in doc.get("datasources") or []:
            uids.add(ds.get("uid"))
            r.check(ds.get("type") != "prometheus" or
                    str(ds.get("url", "")).rstrip("/") == "http://prometheus:9090", p,
                    f"datasource {ds.get('name')}: url {ds.get('url')} is not the compose "
                    f"Prometheus")
    r.check(bool(uids), prov / "datasources", "no datasource is provisioned")
    provider_paths = set()
    for p in sorted(prov.glob("dashboards/*.y*ml")):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            r.problem(p, f"does not parse: {e}")
            continue
        for pr in doc.get("providers") or []:
            provider_paths.add((pr.get("options") or {}).get("path"))
    r.check(bool(provider_paths), prov / "dashboards", "no dashboard provider")
    if compose and "grafana" in compose:
        mounted = {}
        for v in compose["grafana"].spec.get("volumes") or []:
            parts = str(v).split(":")
            if len(parts) >= 2:
                mounted[parts[1]] = parts[0]
        for pp in provider_paths:
            r.check(mounted.get(pp) == "./docker/grafana/dashboards", prov / "dashboards",
                    f"the provider reads {pp}, where compose does not mount "
                    f"docker/grafana/dashboards")

    dashboards = sorted((root / "docker/grafana/dashboards").glob("*.json"))
    r.check(bool(dashboards), root / "docker/grafana/dashboards", "no dashboard")
    for p in dashboards:
        try:
            dash = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            r.problem(p, f"does not parse: {e}")
            continue
        exprs = []

        def walk(node):
            if isinstance(node, dict):
                ds = node.get("datasource")
                if isinstance(ds, dict) and ds.get("uid") and not ds["uid"].startswith("$"):
                    r.check(ds["uid"] in uids, p, f"datasource uid {ds['uid']} is not "
                                                  f"provisioned ({sorted(uids)})")
                if isinstance(node.get("expr"), str):
                    exprs.append((node.get("refId", "?"), node["expr"]))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(dash)
        r.check(bool(exprs), p, "no query")
        check_topics(r, src, p, [e for _, e in exprs])
        for ref, expr in exprs:
            check_expr(r, src, p, ref, expr)


def check_expr(r: Report, src: Sources, p: Path, ref: str, expr: str) -> None:
    names, labels = promql_metrics(expr)
    r.check(bool(names), p, f"query {ref} `{expr}` names no metric")
    used: list[Family] = []
    for n in names:
        base, suffix = n, ""
        for sfx in ("_bucket", "_sum", "_count"):
            if n.endswith(sfx) and n[:-len(sfx)] in src.families:
                base, suffix = n[:-len(sfx)], sfx
        fam = src.families.get(base)
        if not r.check(fam is not None, p,
                       f"query {ref}: metric {n} is not exported by any service (families "
                       f"in the sources: grep BuildCounter/BuildGauge/BuildHistogram)"):
            continue
        used.append(fam)
        if suffix:
            r.check(fam.type in ("histogram", "summary") and
                    not (suffix == "_bucket" and fam.type == "summary"), p,
                    f"query {ref}: {n}: {fam.name} is a {fam.type}, it has no {suffix} series")
        elif fam.type == "histogram":
            r.problem(p, f"query {ref}: {n} is a histogram: query {n}_bucket, _sum or _count")
    for m in re.finditer(r"\b(rate|irate|increase)\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr):
        n = m.group(2)
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        fam = src.families.get(n) or src.families.get(base)
        if fam is not None:
            r.check(fam.type in ("counter", "histogram", "summary"), p,
                    f"query {ref}: {m.group(1)}() of {n}, a {fam.type}: only counters grow")
    if "histogram_quantile" in expr:
        r.check(re.search(r"_bucket\b", expr) is not None and
                re.search(r"\ble\b", expr) is not None, p,
                f"query {ref}: histogram_quantile needs the _bucket series summed by le")
    known = set(SERVER_LABELS)
    for fam in used:
        known |= fam.labels | ({"le"} if fam.type == "histogram" else set())
    for metric, label in labels:
        fam_labels = known
        if metric:
            fam = src.families.get(re.sub(r"_(bucket|sum|count)$", "", metric))
            if fam:
                fam_labels = fam.labels | SERVER_LABELS | (
                    {"le"} if fam.type == "histogram" else set())
        r.check(label in fam_labels, p,
                f"query {ref}: label '{label}' is not a label of "
                f"{metric or ', '.join(sorted({f.name for f in used})) or 'its metrics'} "
                f"(labels: {sorted(fam_labels)})")


# --- Kubernetes ---------------------------------------------------------------------------------

NAMESPACED = {"ConfigMap", "Secret", "Service", "StatefulSet", "Deployment", "Job",
              "HorizontalPodAutoscaler", "ServiceAccount", "PersistentVolumeClaim"}
WORKLOADS = {"StatefulSet", "Deployment", "Job"}
API_VERSIONS = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
                "StatefulSet": "apps/v1", "Deployment": "apps/v1", "Job": "batch/v1",
                "HorizontalPodAutoscaler": "autoscaling/v2"}


def check_k8s(root: Path, r: Report, src: Sources, df: Dockerfile | None, compose) -> None:
    kdir = root / "deploy/k8s"
    files = sorted(kdir.glob("*.yaml"))
    if not r.check(bool(files), kdir, "no manifests"):
        return
    docs: list[tuple[Path, dict]] = []
    kustomization = None
    for p in files:
        try:
            loaded = [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as e:
            r.problem(p, f"does not parse: {e}")
            continue
        if p.name == "kustomization.yaml":
            kustomization = (p, loaded[0] if loaded else {})
            continue
        r.check(bool(loaded), p, "holds no document")
        for d in loaded:
            if not r.check(isinstance(d, dict), p, "a document is not a mapping"):
                continue
            docs.append((p, d))
            check_topics(r, src, p, strings_in(d))
    if r.check(kustomization is not None, kdir / "kustomization.yaml", "missing"):
        kp, k = kustomization
        listed = set(k.get("resources") or [])
        present = {p.name for p in files if p.name != "kustomization.yaml"}
        r.check(listed == present, kp, f"resources {sorted(listed)} differ from the manifests "
                                       f"in deploy/k8s: {sorted(present)}")

    by_kind: dict[str, dict[str, tuple[Path, dict]]] = {}
    for p, d in docs:
        kind, name = d.get("kind"), (d.get("metadata") or {}).get("name")
        ok = r.check(bool(d.get("apiVersion")) and bool(kind) and bool(name), p,
                     f"a document lacks apiVersion, kind or metadata.name: "
                     f"{d.get('kind')}/{name}")
        if not ok:
            continue
        if kind in API_VERSIONS:
            r.check(d["apiVersion"] == API_VERSIONS[kind], p,
                    f"{kind}/{name}: apiVersion {d['apiVersion']}, expected "
                    f"{API_VERSIONS[kind]}")
        if kind in NAMESPACED:
            r.check(d["metadata"].get("namespace", "orderpipe") == "orderpipe", p,
                    f"{kind}/{name}: not in the namespace orderpipe")
        r.check(name not in by_kind.get(kind, {}), p, f"{kind}/{name} is defined twice")
        by_kind.setdefault(kind, {})[name] = (p, d)

    configmaps = {n: (d.get("data") or {}) for n, (_, d) in by_kind.get("ConfigMap", {}).items()}
    image_targets = {}
    if compose:
        for s in compose.values():
            build = s.spec.get("build")
            if isinstance(build, dict) and s.spec.get("image"):
                image_targets[str(s.spec["image"]).split(":")[0]] = build.get("target")

    # The topic-init Job's partitions bound the consumers of a scaled group.
    partitions = src.topic_tool["default_partitions"]
    hpa_targets = {(d["spec"].get("scaleTargetRef") or {}).get("name")
                   for _, d in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    workload_ports: dict[tuple[str, str], dict] = {}
    k8s_daemons: set[str] = set()

    for kind in WORKLOADS:
        for name, (p, d) in by_kind.get(kind, {}).items():
            spec = d.get("spec") or {}
            tmpl = spec.get("template") or {}
            pod = tmpl.get("spec") or {}
            tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
            where = f"{kind}/{name}"
            if kind != "Job":
                sel = (spec.get("selector") or {}).get("matchLabels") or {}
                r.check(bool(sel) and all(tlabels.get(k) == v for k, v in sel.items()), p,
                        f"{where}: selector {sel} does not match the pod labels {tlabels}")
            containers = pod.get("containers") or []
            if not r.check(bool(containers), p, f"{where}: no containers"):
                continue
            psc = pod.get("securityContext") or {}
            vct = {(v.get("metadata") or {}).get("name")
                   for v in spec.get("volumeClaimTemplates") or []}
            volumes = {v.get("name") for v in pod.get("volumes") or []} | vct
            for c in containers:
                cwhere = f"{where} container {c.get('name')}"
                if not r.check(bool(c.get("name")) and bool(c.get("image")), p,
                               f"{where}: a container without name or image"):
                    continue
                csc = c.get("securityContext") or {}
                r.check((csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True) and
                        csc.get("runAsUser", psc.get("runAsUser")) == 10001, p,
                        f"{cwhere}: not runAsNonRoot with runAsUser 10001 (the image's user)")
                res = c.get("resources") or {}
                r.check(bool(res.get("requests")) and bool(res.get("limits")), p,
                        f"{cwhere}: no resource requests and limits")
                for vm in c.get("volumeMounts") or []:
                    r.check(vm.get("name") in volumes, p,
                            f"{cwhere}: mounts {vm.get('name')}, which is no volume")
                repo = str(c["image"]).split(":")[0]
                target = image_targets.get(repo)
                if not r.check(target is not None, p,
                               f"{cwhere}: image {c['image']} is not built by "
                               f"docker-compose.yml (images: {sorted(image_targets)})"):
                    continue
                binary = df.entrypoint_binary(target) if df else None
                if binary not in src.binaries:
                    continue
                b = src.binaries[binary]
                env = dict(df.env(target)) if df else {}
                for ef in c.get("envFrom") or []:
                    ref = ef.get("configMapRef")
                    if ref:
                        if r.check(ref.get("name") in configmaps or ref.get("optional"), p,
                                   f"{cwhere}: envFrom ConfigMap {ref.get('name')} is not "
                                   f"defined"):
                            for k, v in configmaps.get(ref["name"], {}).items():
                                env[k] = str(v)
                                why = src.env_problem(binary, k)
                                r.check(why is None, p, f"{cwhere}: ConfigMap {ref['name']} "
                                                        f"key {k}: {why}")
                for e in c.get("env") or []:
                    n = e.get("name")
                    why = src.env_problem(binary, n)
                    r.check(why is None, p, f"{cwhere}: env {n}: {why}")
                    if "value" in e:
                        env[n] = str(e["value"])
                    vf = e.get("valueFrom") or {}
                    cm = vf.get("configMapKeyRef")
                    if cm:
                        if r.check(cm.get("key") in configmaps.get(cm.get("name"), {}), p,
                                   f"{cwhere}: env {n} refers to {cm.get('name')}/"
                                   f"{cm.get('key')}, which is not defined"):
                            env[n] = str(configmaps[cm["name"]][cm["key"]])
                    if vf.get("fieldRef"):
                        env[n] = "$(" + vf["fieldRef"].get("fieldPath", "") + ")"
                if binary == "orderpipe-topics":
                    partitions = check_topic_tool_argv(
                        r, src, p, cwhere, [str(a) for a in (c.get("args") or [])])
                if b.default_port is None:
                    continue
                port = env.get("HTTP_PORT", str(b.default_port))
                cports = {str(cp.get("name")): str(cp.get("containerPort"))
                          for cp in c.get("ports") or []}
                r.check(set(cports.values()) == {port}, p,
                        f"{cwhere}: containerPorts {sorted(set(cports.values()))}, HTTP_PORT "
                        f"is {port}")
                workload_ports[(name, "pod")] = {"labels": tlabels, "ports": cports}
                for probe, path_ in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
                    pr = (c.get(probe) or {}).get("httpGet")
                    if not r.check(pr is not None, p, f"{cwhere}: no httpGet {probe}"):
                        continue
                    r.check(pr.get("path") == path_, p,
                            f"{cwhere}: {probe} on {pr.get('path')}, expected {path_}")
                    r.check(pr.get("path") in b.routes, p,
                            f"{cwhere}: {probe} path {pr.get('path')} is not a route of "
                            f"{binary}")
                    pport = str(pr.get("port"))
                    r.check(cports.get(pport, pport) == port, p,
                            f"{cwhere}: {probe} port {pport} is not HTTP_PORT {port}")
                ann = (tmpl.get("metadata") or {}).get("annotations") or {}
                if "prometheus.io/port" in ann:
                    r.check(str(ann["prometheus.io/port"]) == port, p,
                            f"{where}: prometheus.io/port {ann['prometheus.io/port']} is not "
                            f"HTTP_PORT {port}")
                if "SHUTDOWN_TIMEOUT" in b.env:
                    st = env.get("SHUTDOWN_TIMEOUT")
                    shutdown = orderpipe_millis(st) if st else src.default_shutdown_ms
                    grace = pod.get("terminationGracePeriodSeconds", 30)
                    r.check(shutdown is not None and grace * 1000 > shutdown, p,
                            f"{where}: terminationGracePeriodSeconds {grace} must exceed "
                            f"SHUTDOWN_TIMEOUT {st or '10s (default)'}")
                    k8s_daemons.add(binary)
                    ops = env.get("CONSOLE_OPERATORS_FILE")
                    if ops:
                        # The operators file: a Secret's key mounted read-only (optional: the
                        # console is read-only without it).
                        secrets = {v.get("name") for v in pod.get("volumes") or []
                                   if (v.get("secret") or {}).get("secretName")}
                        r.check(any(vm.get("name") in secrets and vm.get("readOnly") is True and
                                    ops.startswith(vm.get("mountPath", "").rstrip("/") + "/")
                                    for vm in c.get("volumeMounts") or []), p,
                                f"{cwhere}: CONSOLE_OPERATORS_FILE {ops} is not on a read-only "
                                f"Secret volume")
                    if binary in STATELESS:
                        r.check(kind == "Deployment" and not vct, p,
                                f"{where}: {binary} keeps no state: a Deployment without "
                                f"volumeClaimTemplates")
                        continue
                    data_dir = env.get("DATA_DIR")
                    mounted = {vm.get("mountPath"): vm.get("name")
                               for vm in c.get("volumeMounts") or []}
                    r.check(data_dir is not None and mounted.get(data_dir) in vct, p,
                            f"{cwhere}: DATA_DIR {data_dir} is not on a volumeClaimTemplate: "
                            f"its state would be lost with the pod")
                    r.check(kind == "StatefulSet", p,
                            f"{where}: a service with local state runs as a StatefulSet")
                    scaled = name in hpa_targets or spec.get("replicas", 1) != 1
                    # DATABASE_URL (from a Secret: it holds a password): the state is shared
                    # in PostgreSQL and the service scales out.
                    db = [e for e in c.get("env") or [] if e.get("name") == "DATABASE_URL"]
                    shared = bool(db) and bool(((db[0].get("valueFrom") or {})
                                                .get("secretKeyRef") or {}).get("name"))
                    if db:
                        r.check(shared, p, f"{cwhere}: DATABASE_URL holds a password: take it "
                                           f"from a Secret (valueFrom.secretKeyRef)")
                    if binary in SINGLE_INSTANCE and not shared:
                        r.check(spec.get("replicas") == 1 and name not in hpa_targets, p,
                                f"{where}: {binary} keeps local state: exactly 1 replica, no "
                                f"autoscaler (docs/CONFIGURATION.md \"Instances\")")
                    if scaled or binary == "notification-service":
                        iid = [e for e in c.get("env") or [] if e.get("name") == "INSTANCE_ID"]
                        r.check(bool(iid) and ((iid[0].get("valueFrom") or {}).get("fieldRef")
                                               or {}).get("fieldPath") == "metadata.name", p,
                                f"{cwhere}: INSTANCE_ID must come from the pod name "
                                f"(downward API metadata.name): a stable, distinct "
                                f"transactional.id per replica")
            if kind == "StatefulSet":
                svc = by_kind.get("Service", {}).get(spec.get("serviceName"))
                r.check(svc is not None and svc[1]["spec"].get("clusterIP") == "None", p,
                        f"{where}: serviceName {spec.get('serviceName')} is not a headless "
                        f"Service here")
            if name in hpa_targets:
                r.check("replicas" not in spec, p,
                        f"{where}: sets replicas, but an autoscaler owns them (every apply "
                        f"would reset it)")

    for d in sorted(DAEMONS):
        r.check(d in k8s_daemons, kdir, f"no workload runs {d}")

    for name, (p, d) in by_kind.get("Service", {}).items():
        spec = d.get("spec") or {}
        sel = spec.get("selector") or {}
        pods = [w for w in workload_ports.values()
                if sel and all(w["labels"].get(k) == v for k, v in sel.items())]
        if not r.check(bool(pods), p, f"Service/{name}: selector {sel} matches no pod here"):
            continue
        for sp in spec.get("ports") or []:
            tp = str(sp.get("targetPort", sp.get("port")))
            for w in pods:
                r.check(tp in w["ports"] or tp in w["ports"].values(), p,
                        f"Service/{name}: targetPort {tp} is not a port of its pods "
                        f"{w['ports']}")

    for name, (p, d) in by_kind.get("HorizontalPodAutoscaler", {}).items():
        spec = d.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = by_kind.get(ref.get("kind"), {}).get(ref.get("name"))
        r.check(ref.get("kind") == "StatefulSet" and target is not None, p,
                f"HorizontalPodAutoscaler/{name}: scaleTargetRef {ref.get('kind')}/"
                f"{ref.get('name')} is not a StatefulSet here")
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
        r.check(isinstance(hi, int) and 1 <= lo <= hi, p,
                f"HorizontalPodAutoscaler/{name}: minReplicas {lo}, maxReplicas {hi}")
        r.check(isinstance(hi, int) and hi <= partitions, p,
                f"HorizontalPodAutoscaler/{name}: maxReplicas {hi} exceeds the {partitions} "
                f"partitions topic-init creates: the extra consumers would idle")
        r.check(bool(spec.get("metrics")), p, f"HorizontalPodAutoscaler/{name}: no metrics")
        for m in spec.get("metrics") or []:
            if m.get("type") == "Resource" and target is not None:
                res = m["resource"]["name"]
                pod = target[1]["spec"]["template"]["spec"]
                r.check(all(((c.get("resources") or {}).get("requests") or {}).get(res)
                            for c in pod.get("containers") or []), p,
                        f"HorizontalPodAutoscaler/{name}: scales on {res} utilization, but "
                        f"the containers request no {res}")
            elif m.get("type") in ("Pods", "External"):
                metric = (m.get(m["type"].lower()) or {}).get("metric", {}).get("name")
                r.check(metric in src.families, p,
                        f"HorizontalPodAutoscaler/{name}: metric {metric} is not exported")


# --- main ---------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[2]).resolve()
    if not (root / "CMakeLists.txt").is_file():
        print(f"check_deploy: {root} is not the repository root", file=sys.stderr)
        return 2
    r = Report(root)
    src = Sources(root, r)
    df = check_packages_and_dockerfile(root, r, src)
    if df is not None:
        for s in df.order:
            for a in s.all("RUN") + s.all("CMD") + s.all("ENTRYPOINT") + s.all("ENV"):
                check_topics(r, src, df.path, [a])
    compose = check_compose(root, r, src, df)
    check_prometheus(root, r, src, compose)
    check_grafana(root, r, src, compose)
    check_k8s(root, r, src, df, compose)
    if r.problems:
        for line in r.problems:
            print(f"check_deploy: {line}")
        print(f"check_deploy: {len(r.problems)} problem(s) in {r.checks} checks")
        return 1
    print(f"check_deploy: ok, {r.checks} checks ({len(src.families)} metric families, "
          f"{len(src.topics)} topics, {len(src.binaries)} binaries read from the sources)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
