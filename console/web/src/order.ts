// An order's timeline (/orders/{id}): its state at the order-service, what the saga waits for,
// and every record of it on every topic, each expandable to its headers and payload. While the
// saga is not over it refreshes itself every two seconds.

import { ApiError, config, errorText, getJson, Json, Timeline, TimelineRecord } from "./api.js";
import { gap, h, headersAndPayload, isoTime, setMessage, table } from "./dom.js";

const REFRESH_MS = 2000;

function stateText(v: Json | undefined): string {
  if (v === undefined || v === null) return "–";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function place(r: TimelineRecord): string {
  return `${r.topic}/${r.partition}/${r.offset}`;
}

export function orderView(main: HTMLElement, url: URL): () => void {
  const id = decodeURIComponent(url.pathname.replace(/^\/orders\//, "").replace(/\/$/, ""));
  const refresh = h("button", { type: "button", id: "order-refresh" }, "Refresh");
  const status = h("p", { id: "order-updated", class: "muted", role: "status" }, "Loading…");
  const error = h("p", { id: "order-error", class: "message error", role: "alert", hidden: true });
  const summary = h("dl", { id: "order-state", class: "cards" });
  const waiting = h("p", { id: "order-waiting", "data-testid": "waiting-for" });
  const records = table("timeline", "Records of this order, in Kafka timestamp order",
    ["#", "Time", "Gap", "Source", "Topic", "Partition/offset", "Type", "Causation id", "Trace", ""]);
  main.append(h("h1", {}, "Order ", h("code", { id: "order-id" }, id)),
    h("div", { class: "toolbar" }, refresh, status), error, summary, waiting,
    h("section", {}, records.table));

  const expanded = new Set<string>();
  let stopped = false;
  let timer: number | undefined;

  function recordRows(r: TimelineRecord, i: number, jaeger: string | null): HTMLElement[] {
    const key = place(r);
    const trace = r.trace_id
      ? (jaeger ? h("a", { href: `${jaeger.replace(/\/$/, "")}/trace/${r.trace_id}`, target: "_blank",
          rel: "noopener", "data-testid": "trace-link" }, h("code", {}, r.trace_id.slice(0, 12) + "…"))
        : h("code", { title: r.trace_id }, r.trace_id.slice(0, 12) + "…"))
      : "–";
    const detailId = `record-detail-${i}`;
    const toggle = h("button", { type: "button", class: "link", "aria-expanded": expanded.has(key),
      "aria-controls": detailId, "data-testid": "record-toggle" }, "Details");
    const row = h("tr", { "data-testid": "timeline-row", "data-type": r.type, "data-place": key,
      class: r.fetched ? "" : "unfetched" },
      h("td", { class: "num" }, i + 1),
      h("td", {}, r.time ?? isoTime(r.timestamp_ms)),
      h("td", { class: "num" }, gap(r.gap_ms)),
      h("td", {}, r.source ?? "–"),
      h("td", {}, r.topic),
      h("td", { class: "num" }, `${r.partition}/${r.offset}`),
      h("td", { "data-testid": "record-type" }, h("code", {}, r.type)),
      h("td", {}, r.causation_id ? h("code", {}, r.causation_id) : "–"),
      h("td", {}, trace),
      h("td", {}, r.fetched ? toggle : h("span", { class: "muted" }, "no longer readable")));
    const detail = h("tr", { id: detailId, class: "detail", hidden: !expanded.has(key) },
      h("td", { colspan: 10 }, headersAndPayload(r.headers, r.value,
        ["Ids", { id: r.id, correlation_id: r.correlation_id, causation_id: r.causation_id,
          trace_id: r.trace_id, key: r.key, timestamp_ms: r.timestamp_ms }])));
    toggle.addEventListener("click", () => {
      const open = detail.hidden;
      detail.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) expanded.add(key);
      else expanded.delete(key);
    });
    return [row, detail];
  }

  function show(t: Timeline, jaeger: string | null): void {
    const s = t.state;
    summary.replaceChildren(
      h("div", {}, h("dt", {}, "status"),
        h("dd", { "data-testid": "order-status" }, s ? stateText(s["status"]) : "unknown")),
      ...(s ? ["reason", "customer_id", "email", "customer_email", "total", "currency", "created_at"]
        .filter((k) => s[k] !== undefined && s[k] !== null)
        .map((k) => h("div", {}, h("dt", {}, k), h("dd", {}, stateText(s[k])))) : []));
    if (t.state_error) setMessage(error, "error", `Order state unavailable: ${t.state_error}`);
    else if (!s) setMessage(error, "info", "The order-service does not know this order.");
    else setMessage(error, null);
    waiting.textContent = t.waiting_for ? `Waiting for: ${t.waiting_for}` : "Waiting for nothing: the saga is over.";
    waiting.className = t.waiting_for ? "message info" : "message ok";
    records.body.replaceChildren(...t.records.flatMap((r, i) => recordRows(r, i, jaeger)));
    if (t.records.length === 0) {
      records.body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No record indexed yet.")));
    }
    if (t.truncated) records.body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "… truncated: more records exist.")));
  }

  async function load(): Promise<void> {
    window.clearTimeout(timer);
    let again = true;
    try {
      const [t, cfg] = await Promise.all([
        getJson<Timeline>(`/api/orders/${encodeURIComponent(id)}/timeline`),
        config().catch(() => null),
      ]);
      if (stopped) return;
      show(t, cfg?.jaeger_url ?? null);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      again = Boolean(t.waiting_for) || t.state?.["status"] === "PENDING";
    } catch (e) {
      if (stopped) return;
      status.textContent = "";
      const notFound = e instanceof ApiError && (e.status === 404 || e.status === 400);
      const what = !notFound ? "Cannot load the timeline" : e.status === 404 ? "No such order" : "Invalid order id";
      setMessage(error, "error", `${what}: ${errorText(e)}`);
      again = !notFound;
    }
    if (again && !stopped) timer = window.setTimeout(() => void load(), REFRESH_MS);
  }
  refresh.addEventListener("click", () => void load());
  void load();

  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
