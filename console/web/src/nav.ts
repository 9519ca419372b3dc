// In-page navigation without a reload: the router (app.ts) listens for NAVIGATE.

export const NAVIGATE = "orderpipe:navigate";

/** Goes to an internal URL (path + query); `replace` keeps the history entry. */
export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  window.dispatchEvent(new Event(NAVIGATE));
}
