// A tiny DOM builder and the formatting every view shares.

type Attr = string | number | boolean | null | undefined | ((ev: Event) => void);
export type Child = Node | string | number | null | undefined | false;

/** h("a", {href: "/x", "data-testid": "y", onclick: f}, "text", child...) */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, v] of Object.entries(attrs)) {
    if (typeof v === "function") {
      el.addEventListener(name.replace(/^on/, ""), v);
    } else if (v === true) {
      el.setAttribute(name, "");
    } else if (v !== false && v !== null && v !== undefined) {
      el.setAttribute(name, String(v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number"
      ? document.createTextNode(String(c)) : c);
  }
}

/** A table with a caption, header cells and a body to fill. */
export function table(id: string, caption: string, columns: string[]):
    { table: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = h("tbody");
  const t = h("table", { id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))),
    body);
  return { table: t, body };
}

/** A message box: kind "error" is an alert, the others a polite status. */
export function message(kind: "error" | "info" | "ok", text: string, testid?: string): HTMLElement {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status",
    "data-testid": testid }, text);
}

export function setMessage(box: HTMLElement, kind: "error" | "info" | "ok" | null,
                           text = ""): void {
  box.className = `message ${kind ?? ""}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = text;
  box.hidden = kind === null;
}

export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function gap(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? `+${ms} ms` : `+${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function isoTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  return new Date(ms).toISOString();
}

/** JSON as indented text, or the text itself. */
export function pretty(v: unknown): string {
  if (typeof v === "string") return v;
  return JSON.stringify(v, null, 2) ?? "null";
}

/** A <pre> of a record's headers and payload. */
export function headersAndPayload(headers: Record<string, string | null> | undefined,
                                  value: unknown, extra?: [string, unknown]): HTMLElement {
  return h("div", { class: "record-detail" },
    h("h4", {}, "Headers"),
    h("pre", { "data-testid": "record-headers" }, pretty(headers ?? {})),
    h("h4", {}, "Payload"),
    h("pre", { "data-testid": "record-payload" }, value === undefined ? "(not read)" : pretty(value)),
    extra ? h("h4", {}, extra[0]) : null,
    extra ? h("pre", {}, pretty(extra[1])) : null);
}
