// DLQ triage (/dlq/{topic}): dlqctl's filters, reflected in the page's URL so a view can be
// shared; the dead letters in a table, each expandable to its headers and payload; and the
// operator's Replay / Discard of the selected ones: a dry run first, its preview confirmed in a
// dialog, then the real run. The operator's token is kept in sessionStorage only.

import {
  ActionRequest, ActionResult, ApiError, config, Config, DLQ_FILTERS, DlqEntry, DlqFilterName,
  DlqList, errorText, getJson, postJson,
} from "./api.js";
import { age, h, headersAndPayload, setMessage, table } from "./dom.js";
import { navigate } from "./nav.js";

const TOKEN_KEY = "orderpipe-console.operator-token";
const REASONS = ["MAX_RETRIES", "PERMANENT_ERROR", "POISON_MESSAGE"];
const STATUSES = ["pending", "replayed", "discarded"];
const LABELS: Record<DlqFilterName, string> = {
  status: "Status", reason: "Reason", order_id: "Order id", error_contains: "Error contains",
  since: "Failed since", until: "Failed until", partition: "Partition",
};

function storedToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

function storeToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // no storage (a locked-down browser): the token lives in the field only
  }
}

function filterField(name: DlqFilterName, value: string): HTMLElement {
  const id = `filter-${name}`;
  let input: HTMLElement;
  if (name === "status" || name === "reason") {
    const options = name === "status" ? STATUSES : REASONS;
    input = h("select", { id, name },
      h("option", { value: "" }, "any"),
      ...options.map((o) => h("option", { value: o, selected: o === value }, o)));
  } else {
    input = h("input", {
      id, name, value, type: name === "partition" ? "number" : "text", min: name === "partition" ? 0 : null,
      placeholder: name === "since" || name === "until" ? "30m, 2d or RFC 3339" : null,
    });
  }
  return h("div", { class: "field" }, h("label", { for: id }, LABELS[name]), input);
}

export function dlqView(main: HTMLElement, url: URL): () => void {
  const topic = decodeURIComponent(url.pathname.replace(/^\/dlq\//, "").replace(/\/$/, ""));
  const filters = new URLSearchParams();
  for (const f of DLQ_FILTERS) {
    const v = url.searchParams.get(f)?.trim();
    if (v) filters.set(f, v);
  }

  const topics = h("nav", { id: "dlq-topics", "aria-label": "DLQ topics", class: "tabs" });
  const form = h("form", { id: "dlq-filters", class: "filters", "aria-label": "Filters" },
    ...DLQ_FILTERS.map((f) => filterField(f, filters.get(f) ?? "")),
    h("div", { class: "field buttons" },
      h("button", { type: "submit", id: "dlq-apply" }, "Apply filters"),
      h("button", { type: "button", id: "dlq-clear" }, "Clear")));

  const token = h("input", { id: "dlq-token", type: "password", autocomplete: "off", value: storedToken(),
    "aria-describedby": "dlq-token-help" });
  const note = h("input", { id: "dlq-note", type: "text", autocomplete: "off" });
  const force = h("input", { id: "dlq-force", type: "checkbox" });
  const forceLabel = h("label", { for: "dlq-force" }, "force (past the replay limit)");
  const replayBtn = h("button", { type: "button", id: "dlq-replay" }, "Replay selected");
  const discardBtn = h("button", { type: "button", id: "dlq-discard", class: "danger" }, "Discard selected");
  const forget = h("button", { type: "button", id: "dlq-forget-token" }, "Forget token");
  const actionMsg = h("p", { id: "dlq-message", class: "message", role: "status", hidden: true });
  const operator = h("fieldset", { id: "dlq-operator", class: "operator" },
    h("legend", {}, "Operator actions"),
    h("div", { class: "field" }, h("label", { for: "dlq-token" }, "Operator token"), token,
      h("small", { id: "dlq-token-help", class: "muted" }, "Kept in this tab only (sessionStorage).")),
    forget,
    h("div", { class: "field" }, h("label", { for: "dlq-note" }, "Note (required to discard)"), note),
    h("div", { class: "field check" }, force, forceLabel),
    h("div", { class: "field buttons" }, replayBtn, discardBtn));

  const refresh = h("button", { type: "button", id: "dlq-refresh" }, "Refresh");
  const summary = h("p", { id: "dlq-summary", class: "muted", role: "status" }, "Loading…");
  const listError = h("p", { id: "dlq-error", class: "message error", role: "alert", hidden: true });
  const selectAll = h("input", { type: "checkbox", id: "dlq-select-all", "aria-label": "Select all shown" });
  const list = table("dlq-table", `Dead letters of ${topic}`,
    ["", "Position", "Order", "Error class", "Original topic", "Attempts", "Replays", "Age", "Status", "Last error", ""]);
  list.table.querySelector("thead th")?.append(selectAll);
  const dialog = h("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-title" });

  main.append(h("h1", {}, "Dead letters: ", h("code", { id: "dlq-topic" }, topic)), topics, form,
    operator, actionMsg, h("div", { class: "toolbar" }, refresh, summary), listError,
    h("section", { class: "wide" }, list.table), dialog);

  let stopped = false;
  let cfg: Config | null = null;
  let entries: DlqEntry[] = [];
  const selected = new Set<string>();
  const expanded = new Set<string>();

  config().then((c) => {
    if (stopped) return;
    cfg = c;
    topics.replaceChildren(...c.dlq_topics.map((t) => h("a", {
      href: `/dlq/${encodeURIComponent(t)}`, "aria-current": t === topic ? "page" : null }, t)));
    forceLabel.textContent = `force (past the replay limit of ${c.max_replays})`;
    if (!c.operators) {
      setMessage(actionMsg, "info", "No operator is configured on this console: replay and discard are refused.");
    }
  }).catch((e: unknown) => setMessage(actionMsg, "error", `Cannot read /api/config: ${errorText(e)}`));

  token.addEventListener("input", () => storeToken(token.value.trim()));
  forget.addEventListener("click", () => {
    token.value = "";
    storeToken("");
  });

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (typeof v === "string" && v.trim()) q.set(k, v.trim());
    }
    const qs = q.toString();
    navigate(`/dlq/${encodeURIComponent(topic)}${qs ? `?${qs}` : ""}`);
  });
  form.querySelector("#dlq-clear")?.addEventListener("click", () => navigate(`/dlq/${encodeURIComponent(topic)}`));

  function rows(e: DlqEntry): HTMLElement[] {
    const k = e.ledger_key;
    const box = h("input", { type: "checkbox", checked: selected.has(k), "aria-label": `Select ${k}`,
      "data-testid": "dlq-select" });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(k);
      else selected.delete(k);
    });
    const detailId = `dlq-detail-${e.partition}-${e.offset}`;
    const toggle = h("button", { type: "button", class: "link", "aria-expanded": expanded.has(k),
      "aria-controls": detailId, "data-testid": "dlq-toggle" }, "Details");
    const detail = h("tr", { id: detailId, class: "detail", hidden: !expanded.has(k) },
      h("td", { colspan: 11 }, headersAndPayload(e.headers, e.value,
        e.resolution !== undefined ? ["Resolution", e.resolution] : undefined)));
    toggle.addEventListener("click", () => {
      const open = detail.hidden;
      detail.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) expanded.add(k);
      else expanded.delete(k);
    });
    const row = h("tr", { "data-testid": "dlq-row", "data-ledger-key": k, "data-order-id": e.key ?? "",
      "data-status": e.status, class: `status-${e.status}` },
      h("td", {}, box),
      h("td", { class: "num", title: k }, `${e.partition}:${e.offset}`),
      h("td", {}, e.key ? h("a", { href: `/orders/${encodeURIComponent(e.key)}` }, h("code", {}, e.key)) : "–"),
      h("td", { "data-testid": "dlq-reason" }, e.reason),
      h("td", {}, e.original_topic || "–"),
      h("td", { class: "num", "data-testid": "dlq-attempts" }, e.retry_count),
      h("td", { class: "num", "data-testid": "dlq-replays" }, e.replay_count),
      h("td", { class: "num", title: e.failed_at ?? "" }, age(e.age_seconds)),
      h("td", { "data-testid": "dlq-status" }, h("span", { class: `badge ${e.status}` }, e.status)),
      h("td", { class: "error-text" }, e.last_error),
      h("td", {}, toggle));
    return [row, detail];
  }

  async function load(): Promise<void> {
    summary.textContent = "Loading…";
    refresh.disabled = true;
    try {
      const q = filters.toString();
      const r = await getJson<DlqList>(`/api/dlq/${encodeURIComponent(topic)}${q ? `?${q}` : ""}`);
      if (stopped) return;
      entries = r.entries;
      const present = new Set(entries.map((e) => e.ledger_key));
      for (const k of [...selected]) if (!present.has(k)) selected.delete(k);
      list.body.replaceChildren(...entries.flatMap(rows));
      if (entries.length === 0) {
        list.body.append(h("tr", {}, h("td", { colspan: 11, class: "muted" }, "No dead letter matches.")));
      }
      summary.textContent = `${entries.length} shown of ${r.total} matching in ${r.topic}` +
        `${r.truncated ? " (truncated: narrow the filters)" : ""}; updated ${new Date().toLocaleTimeString()}`;
      setMessage(listError, null);
    } catch (e) {
      if (stopped) return;
      summary.textContent = "";
      const what = e instanceof ApiError && e.status === 400 ? "Invalid filter" : "Cannot list the dead letters";
      setMessage(listError, "error", `${what}: ${errorText(e)}`);
    } finally {
      refresh.disabled = false;
    }
  }
  refresh.addEventListener("click", () => void load());
  selectAll.addEventListener("change", () => {
    for (const e of entries) {
      if (selectAll.checked) selected.add(e.ledger_key);
      else selected.delete(e.ledger_key);
    }
    for (const b of list.body.querySelectorAll<HTMLInputElement>("input[type=checkbox]")) b.checked = selectAll.checked;
  });

  /** Shows a dry run's answer; resolves true when the operator confirms. */
  function confirm(action: string, preview: ActionResult): Promise<boolean> {
    const ok = h("button", { type: "submit", value: "confirm", id: "confirm-ok", class: action === "discard" ? "danger" : "",
      disabled: preview.planned.length === 0 }, `${action === "replay" ? "Replay" : "Discard"} ${preview.planned.length} record(s)`);
    const planned = table("confirm-planned", "Planned", ["Dead letter", "Order", "Reason", "To", "Replay #"]);
    planned.body.append(...preview.planned.map((p) => h("tr", {},
      h("td", {}, h("code", {}, p.ledger_key)), h("td", {}, h("code", {}, p.order_id)), h("td", {}, p.reason),
      h("td", {}, p.to || "–"), h("td", { class: "num" }, p.replay))));
    const skipped = Object.entries(preview.skipped ?? {}).map(([k, n]) => `${k.replace(/_/g, " ")}: ${n}`).join(", ");
    dialog.replaceChildren(h("form", { method: "dialog" },
      h("h2", { id: "confirm-title" }, `Confirm ${action} (preview by ${preview.user || "?"})`),
      h("p", { id: "confirm-message", "data-testid": "confirm-message" }, preview.message),
      preview.planned.length > 0 ? planned.table : null,
      h("p", { id: "confirm-skipped" }, `Skipped: ${skipped || "none"}`),
      h("div", { class: "buttons" }, ok, h("button", { type: "submit", value: "cancel", id: "confirm-cancel" }, "Cancel"))));
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
      (preview.planned.length > 0 ? ok : dialog.querySelector<HTMLButtonElement>("#confirm-cancel"))?.focus();
    });
  }

  async function act(action: "replay" | "discard"): Promise<void> {
    const keys = entries.map((e) => e.ledger_key).filter((k) => selected.has(k));
    if (keys.length === 0) {
      setMessage(actionMsg, "error", "Select at least one dead letter first.");
      return;
    }
    const why = note.value.trim();
    if (action === "discard" && !why) {
      setMessage(actionMsg, "error", "A discard needs a note: say why in the Note field.");
      note.focus();
      return;
    }
    const path = `/api/dlq/${encodeURIComponent(topic)}/${action}`;
    const body: ActionRequest = { keys, dry_run: true, note: why, force: force.checked };
    const tok = token.value.trim();
    replayBtn.disabled = discardBtn.disabled = true;
    try {
      setMessage(actionMsg, "info", `Asking for a ${action} preview…`);
      const preview = await postJson<ActionResult>(path, body, tok);
      setMessage(actionMsg, "info", `Preview: ${preview.message}`);
      if (!(await confirm(action, preview))) {
        setMessage(actionMsg, "info", `Cancelled: nothing was ${action === "replay" ? "replayed" : "discarded"}.`);
        return;
      }
      const done = await postJson<ActionResult>(path, { ...body, dry_run: false }, tok);
      setMessage(actionMsg, "ok", `${done.message} (${done.done} done by ${done.user})`);
      selected.clear();
      selectAll.checked = false;
      await load();
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        setMessage(actionMsg, "error", `refused: ${e.problem?.detail || e.message}`);
        if (!cfg || cfg.operators) token.focus();
      } else {
        setMessage(actionMsg, "error", `${action} failed: ${errorText(e)}`);
      }
    } finally {
      replayBtn.disabled = discardBtn.disabled = false;
    }
  }
  replayBtn.addEventListener("click", () => void act("replay"));
  discardBtn.addEventListener("click", () => void act("discard"));

  void load();
  return () => {
    stopped = true;
    if (dialog.open) dialog.close();
  };
}
