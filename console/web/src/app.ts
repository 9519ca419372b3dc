// The router: one HTML shell for every page route, the view chosen by location.pathname.
// Internal links change the URL with history.pushState; Back and Forward re-render.

import { errorText } from "./api.js";
import { h, message, setMessage } from "./dom.js";
import { dlqView } from "./dlq.js";
import { liveView } from "./live.js";
import { orderView } from "./order.js";
import { NAVIGATE, navigate } from "./nav.js";
import { searchView } from "./search.js";

/** A view renders into <main> and returns what stops it (timers, pollers). */
export type View = (main: HTMLElement, url: URL) => (() => void) | void;

let stopCurrent: (() => void) | null = null;

function pick(path: string): { view: View; title: string } | null {
  if (path === "/" || path === "") return { view: liveView, title: "Live" };
  let m = /^\/orders\/([^/]+)\/?$/.exec(path);
  if (m) return { view: orderView, title: "Order" };
  m = /^\/dlq\/([^/]+)\/?$/.exec(path);
  if (m) return { view: dlqView, title: "DLQ" };
  if (path === "/search") return { view: searchView, title: "Search" };
  return null;
}

function render(): void {
  if (stopCurrent) {
    stopCurrent();
    stopCurrent = null;
  }
  const main = document.getElementById("main") as HTMLElement;
  main.replaceChildren();
  const url = new URL(location.href);
  const route = pick(url.pathname);
  for (const a of document.querySelectorAll<HTMLAnchorElement>("header nav a")) {
    const here = a.id === "nav-live" ? url.pathname === "/" : url.pathname.startsWith("/dlq/");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!route) {
    document.title = "Not found · orderpipe console";
    main.append(h("h1", {}, "Not found"),
      message("error", `There is no page at ${url.pathname}.`, "page-error"));
    return;
  }
  document.title = `${route.title} · orderpipe console`;
  try {
    stopCurrent = route.view(main, url) ?? null;
  } catch (e) {
    main.append(message("error", errorText(e), "page-error"));
  }
}


function isInternal(a: HTMLAnchorElement): boolean {
  if (a.target || a.hasAttribute("download") || a.origin !== location.origin) return false;
  return !a.pathname.startsWith("/api/") && !a.pathname.startsWith("/assets/");
}

document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey ||
      ev.altKey) {
    return;
  }
  const a = (ev.target as Element | null)?.closest("a");
  if (!a || !isInternal(a)) return;
  ev.preventDefault();
  navigate(a.pathname + a.search);
});

document.getElementById("search-form")?.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = (document.getElementById("search-q") as HTMLInputElement).value.trim();
  if (q) navigate(`/search?q=${encodeURIComponent(q)}`);
});

// Nothing may end as a blank page: anything uncaught is shown above <main>.
function showUncaught(text: string): void {
  const box = document.getElementById("app-error");
  if (box) setMessage(box, "error", `Unexpected error: ${text}`);
}
window.addEventListener("error", (ev) => showUncaught(ev.message));
window.addEventListener("unhandledrejection", (ev) => showUncaught(errorText(ev.reason)));
window.addEventListener("popstate", render);
window.addEventListener(NAVIGATE, () => {
  render();
  window.scrollTo(0, 0);
});

render();
