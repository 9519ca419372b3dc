// The live view (/): polls /api/live every second. Counters are shown exactly as the
// analytics-service's /api/metrics gives them; rates and latencies are charted with uPlot.

import { errorText, getJson, Live, MetricObject, MetricValue } from "./api.js";
import { h, setMessage, table } from "./dom.js";

const POLL_MS = 1000;
const KEEP_S = 300; // ~5 minutes of points

/** Counters shown as cards, in this order (any other figure is in "All figures"). */
const CARDS = ["orders.created", "orders.confirmed", "orders.cancelled", "notifications.sent",
  "notifications.failed", "dlq.pending", "revenue.confirmed"];

function num(m: MetricObject | null, key: string): number | null {
  const v = m?.[key];
  return typeof v === "number" ? v : null;
}

function sub(m: MetricObject | null, key: string): MetricObject {
  const v = m?.[key];
  return typeof v === "object" && v !== null ? v : {};
}

/** A figure as the API gave it. */
function shown(v: MetricValue | undefined): string {
  if (v === undefined) return "–";
  if (v === null) return "null";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** Every figure, nested ones as "a.b" paths. */
function flatten(m: MetricObject, prefix = "", out: [string, MetricValue][] = []):
    [string, MetricValue][] {
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === "object" && v !== null) flatten(v, `${prefix}${k}.`, out);
    else out.push([prefix + k, v]);
  }
  return out;
}

function decisions(m: MetricObject): number | null {
  const c = num(m, "orders.confirmed");
  const x = num(m, "orders.cancelled");
  const byCustomer = sub(m, "cancellation_reasons")["CUSTOMER_REQUEST"];
  if (c === null || x === null) return null;
  return c + x - (typeof byCustomer === "number" ? byCustomer : 0);
}

function makeChart(title: string, labels: [string, string], stroke: [string, string],
                   unit: string, target: HTMLElement): uPlot {
  const opts: uPlot.Options = {
    title,
    width: Math.max(320, target.clientWidth || 480),
    height: 220,
    // A fixed window ending at the last poll: with one or two points uPlot would otherwise
    // stretch the axis over years.
    scales: { x: { time: true, range: (_u, _min, max) => {
      const end = max ?? Date.now() / 1000;
      return [end - KEEP_S, end];
    } }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [
      {},
      { label: labels[0], stroke: stroke[0], width: 2, value: (_u, v) => v === null ? "–" : `${v.toFixed(2)} ${unit}` },
      { label: labels[1], stroke: stroke[1], width: 2, value: (_u, v) => v === null ? "–" : `${v.toFixed(2)} ${unit}` },
    ],
    axes: [{}, { label: unit, size: 60 }],
  };
  return new uPlot(opts, [[], [], []], target);
}

export function liveView(main: HTMLElement): () => void {
  const status = h("p", { id: "live-updated", class: "muted", role: "status" }, "Waiting for the first figures…");
  const error = h("p", { id: "live-error", class: "message error", role: "alert", hidden: true });
  const cards = h("dl", { id: "live-cards", class: "cards" });
  const chartRates = h("div", { id: "chart-rates", class: "chart" });
  const chartSaga = h("div", { id: "chart-saga", class: "chart" });
  const reasons = table("live-outcomes", "Confirmed vs cancelled, by reason", ["Outcome", "Orders"]);
  const dlq = table("live-dlq", "Dead letters pending, per DLQ topic", ["Topic", "Pending"]);
  const services = table("live-services", "Services", ["Service", "Readiness", "Detail", "Checks"]);
  const lag = table("live-lag", "Consumer lag", ["Service", "Loop", "Topic", "Partition", "Lag"]);
  const saga = table("live-saga", "Saga latency (ms)", ["Quantile", "ms"]);
  const breaker = h("p", { id: "live-breaker" }, "–");
  const all = table("live-all", "All figures (GET /api/metrics)", ["Figure", "Value"]);

  main.append(
    h("h1", {}, "Live"), status, error, cards,
    h("section", { class: "charts", "aria-label": "Charts" }, chartRates, chartSaga),
    h("div", { class: "grid" },
      h("section", {}, reasons.table),
      h("section", {}, dlq.table),
      h("section", {}, saga.table),
      h("section", {}, h("h2", {}, "Email circuit breaker"), breaker)),
    h("section", {}, services.table),
    h("section", {}, lag.table),
    h("details", { id: "live-all-details" }, h("summary", {}, "All figures"), all.table));

  const rates = makeChart("Orders and decisions per second", ["orders/s", "decisions/s"],
    ["#1f6feb", "#2da44e"], "/s", chartRates);
  const latency = makeChart("Saga latency", ["p50", "p99"], ["#8250df", "#cf222e"], "ms", chartSaga);
  const data: { t: number[]; orders: (number | null)[]; decided: (number | null)[];
    p50: (number | null)[]; p99: (number | null)[] } = { t: [], orders: [], decided: [], p50: [], p99: [] };
  let last: { t: number; created: number; decided: number } | null = null;

  const onResize = (): void => {
    for (const [c, el] of [[rates, chartRates], [latency, chartSaga]] as const) {
      c.setSize({ width: Math.max(320, el.clientWidth), height: 220 });
    }
  };
  window.addEventListener("resize", onResize);

  function record(live: Live): void {
    const t = live.time_ms / 1000;
    const m = live.metrics;
    const created = num(m, "orders.created");
    const decided = m ? decisions(m) : null;
    let ordersRate: number | null = null;
    let decidedRate: number | null = null;
    if (last && created !== null && decided !== null && t > last.t) {
      ordersRate = Math.max(0, (created - last.created) / (t - last.t));
      decidedRate = Math.max(0, (decided - last.decided) / (t - last.t));
    }
    last = created !== null && decided !== null ? { t, created, decided } : null;
    const lat = sub(m, "saga_latency_ms");
    data.t.push(t);
    data.orders.push(ordersRate);
    data.decided.push(decidedRate);
    data.p50.push(typeof lat["p50"] === "number" ? lat["p50"] : null);
    data.p99.push(typeof lat["p99"] === "number" ? lat["p99"] : null);
    while (data.t.length > 0 && data.t[0] < t - KEEP_S) {
      data.t.shift(); data.orders.shift(); data.decided.shift(); data.p50.shift(); data.p99.shift();
    }
    rates.setData([data.t, data.orders, data.decided]);
    latency.setData([data.t, data.p50, data.p99]);
  }

  function show(live: Live): void {
    const m = live.metrics;
    status.textContent = `Updated ${new Date(live.time_ms).toLocaleTimeString()}`;
    if (m === null) {
      setMessage(error, "error", `Business figures unavailable: ${live.metrics_error ?? "the analytics-service did not answer"}`);
    } else {
      setMessage(error, null);
    }
    cards.replaceChildren(...CARDS.map((k) => h("div", {},
      h("dt", {}, k),
      h("dd", { "data-testid": `metric-${k}` }, m ? shown(m[k]) : "–"))));

    const why = sub(m, "cancellation_reasons");
    reasons.body.replaceChildren(
      h("tr", {}, h("th", { scope: "row" }, "confirmed"), h("td", { "data-testid": "outcome-confirmed" }, shown(m?.["orders.confirmed"]))),
      h("tr", {}, h("th", { scope: "row" }, "cancelled"), h("td", { "data-testid": "outcome-cancelled" }, shown(m?.["orders.cancelled"]))),
      ...Object.entries(why).map(([reason, n]) => h("tr", { class: "sub" },
        h("th", { scope: "row" }, `cancelled: ${reason}`), h("td", { "data-testid": `reason-${reason}` }, shown(n)))));

    const pending = sub(m, "dlq.pending_by_topic");
    dlq.body.replaceChildren(...Object.entries(pending).map(([topic, n]) => h("tr", {},
      h("td", {}, h("a", { href: `/dlq/${encodeURIComponent(topic)}` }, topic)),
      h("td", { "data-testid": `dlq-pending-${topic}`, class: typeof n === "number" && n > 0 ? "warn" : "" }, shown(n)))));
    if (Object.keys(pending).length === 0) dlq.body.append(h("tr", {}, h("td", { colspan: 2, class: "muted" }, "–")));

    const lat = sub(m, "saga_latency_ms");
    saga.body.replaceChildren(...Object.entries(lat).map(([q, v]) => h("tr", {},
      h("th", { scope: "row" }, q), h("td", { "data-testid": `saga-${q}` }, shown(v)))));

    breaker.textContent = live.breaker ?? "unknown";
    breaker.className = `breaker breaker-${live.breaker ?? "unknown"}`;

    services.body.replaceChildren(...live.services.map((s) => h("tr", { "data-service": s.name },
      h("td", {}, s.name),
      h("td", { class: `status-${s.status}`, "data-testid": `service-${s.name}` }, s.status),
      h("td", {}, s.detail ?? ""),
      h("td", {}, s.checks ? Object.entries(s.checks).map(([k, v]) => `${k}: ${v}`).join(", ") : "–"))));

    lag.body.replaceChildren(...live.lag.map((l) => h("tr", {},
      h("td", {}, l.service), h("td", {}, l.loop), h("td", {}, l.topic),
      h("td", { class: "num" }, l.partition), h("td", { class: l.lag > 0 ? "num warn" : "num" }, l.lag))));
    if (live.lag.length === 0) lag.body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "no lag reported")));

    all.body.replaceChildren(...(m ? flatten(m) : []).map(([k, v]) => h("tr", {},
      h("th", { scope: "row" }, k), h("td", {}, shown(v)))));
  }

  let stopped = false;
  let timer: number | undefined;
  async function poll(): Promise<void> {
    const started = Date.now();
    try {
      const live = await getJson<Live>("/api/live");
      if (stopped) return;
      show(live);
      record(live);
    } catch (e) {
      if (stopped) return;
      setMessage(error, "error", `Cannot read /api/live: ${errorText(e)}`);
    }
    if (!stopped) timer = window.setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }
  void poll();

  return () => {
    stopped = true;
    window.clearTimeout(timer);
    window.removeEventListener("resize", onResize);
    rates.destroy();
    latency.destroy();
  };
}
