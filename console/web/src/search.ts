// Search (/search?q=): orders by exact id, exact customer id, or email. A single hit that is
// exactly the order id typed goes straight to that order.

import { errorText, getJson, SearchResult } from "./api.js";
import { h, isoTime, message, table } from "./dom.js";
import { navigate } from "./nav.js";

export function searchView(main: HTMLElement, url: URL): () => void {
  const q = (url.searchParams.get("q") ?? "").trim();
  const box = document.getElementById("search-q") as HTMLInputElement | null;
  if (box) box.value = q;
  main.append(h("h1", {}, "Search"));
  if (!q) {
    main.append(message("info", "Type an order id, a customer id or an email in the search box.", "search-empty"));
    return () => undefined;
  }
  const status = h("p", { id: "search-status", role: "status", class: "muted" }, `Searching for “${q}”…`);
  main.append(status);
  let stopped = false;
  (async () => {
    try {
      const r = await getJson<SearchResult>(`/api/search?q=${encodeURIComponent(q)}`);
      if (stopped) return;
      if (r.orders.length === 1 && r.orders[0].order_id === q) {
        navigate(`/orders/${encodeURIComponent(q)}`, true);
        return;
      }
      status.textContent = r.orders.length === 0 ? `No order matches “${q}”.`
        : `${r.orders.length} order(s) match “${q}”${r.truncated ? " (only the newest shown)" : ""}.`;
      if (r.orders.length === 0) return;
      const t = table("search-results", "Orders, newest first", ["Order", "Customer", "Email", "Created"]);
      t.body.append(...r.orders.map((o) => h("tr", { "data-order-id": o.order_id },
        h("td", {}, h("a", { href: `/orders/${encodeURIComponent(o.order_id)}` }, h("code", {}, o.order_id))),
        h("td", {}, o.customer_id), h("td", {}, o.email), h("td", {}, isoTime(o.created_ms)))));
      main.append(t.table);
    } catch (e) {
      if (stopped) return;
      status.remove();
      main.append(message("error", `Search failed: ${errorText(e)}`, "page-error"));
    }
  })();
  return () => {
    stopped = true;
  };
}
