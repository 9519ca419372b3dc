#!/usr/bin/env node
// The console's page, end to end in a real browser (Chromium through playwright-core), against a
// running pipeline: a Catch2 test starts the broker, the services, the fake email provider and
// orderpipe-console, then runs `node tests/browser/console.mjs` with
//   CONSOLE_URL       orderpipe-console's base URL, e.g. http://127.0.0.1:8084
//   ORDER_URL         order-service's base URL
//   PROVIDER_URL      the fake email provider's base URL (its /admin/rules)
//   OPERATOR_TOKEN    a token the console accepts for the actions
//   DLQCTL            the dlqctl binary
//   DLQCTL_ARGS_JSON  a JSON array of extra dlqctl arguments, e.g. ["--bootstrap","127.0.0.1:9092"]
//                     (dlqctl has no --prefix flag: TOPIC_PREFIX comes from the environment, which
//                     dlqctl inherits; DLQCTL_ENV_JSON, a JSON object, adds variables for it only)
//   SCREENSHOT_DIR    where live.png, order.png, dlq.png and replay-preview.png go (optional)
//   TIMEOUT_SCALE     multiplies every deadline (default 1; each wait is 60 s × it)
//   CHROMIUM          the browser (default /usr/bin/chromium)
// It prints each step; exit 0 when all is well, 1 with the reason otherwise. It never sleeps for a
// fixed time: every wait is for something it can see, with a deadline.

import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

// playwright-core is console/web's (dev) dependency: scripts/setup.sh runs npm ci there.
const require = createRequire(new URL("../../console/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const started = Date.now();
const SCALE = Number(process.env.TIMEOUT_SCALE || "1") > 0 ? Number(process.env.TIMEOUT_SCALE || "1") : 1;
const WAIT_MS = 60_000 * SCALE;

function step(what) {
  console.log(`[console.mjs +${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

class Failure extends Error {}
function fail(why) {
  throw new Failure(why);
}
function check(ok, why) {
  if (!ok) fail(why);
}

function need(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set (see the top of tests/browser/console.mjs)`);
  return v.replace(/\/+$/, "");
}

/** Polls `probe` until it returns a truthy value; fails naming `what` and the last value seen. */
async function waitFor(what, probe, { timeoutMs = WAIT_MS, everyMs = 250, onRetry } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      // 0 is an answer (a count); null, undefined, false and {ok: false} are not yet.
      const done = last !== null && last !== undefined && last !== false && last !== "" &&
        !(typeof last === "object" && "ok" in last && !last.ok);
      if (done) return last;
    } catch (e) {
      last = `error: ${e.message ?? e}`;
    }
    if (Date.now() > deadline) {
      fail(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}; last seen: ${
        typeof last === "string" ? last : JSON.stringify(last)}`);
    }
    if (onRetry) await onRetry().catch(() => undefined);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function http(method, url, body, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

// The SKU and price the integration tests seed (tests/integration/pipeline.hpp).
async function placeOrder(orderUrl, email) {
  const r = await http("POST", `${orderUrl}/orders`, {
    customer_id: "c-browser",
    customer_email: email,
    currency: "USD",
    items: [{ sku: "MOUSE-001", quantity: 1, unit_price: "29.99" }],
  });
  check(r.status === 201 && r.json?.order_id, `POST /orders answered ${r.status}: ${r.text}`);
  return r.json.order_id;
}

function runDlqctl(bin, args, extraEnv) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { ...process.env, ...extraEnv }, timeout: WAIT_MS, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Failure(`${bin} ${args.join(" ")} failed (${err.code ?? err.signal}): ${stderr || err.message}`));
        else resolve(stdout);
      });
  });
}

async function main() {
  const CONSOLE = need("CONSOLE_URL");
  const ORDERS = need("ORDER_URL");
  const PROVIDER = need("PROVIDER_URL");
  const TOKEN = need("OPERATOR_TOKEN");
  const DLQCTL = need("DLQCTL");
  let dlqctlArgs = [];
  let dlqctlEnv = {};
  try {
    dlqctlArgs = JSON.parse(process.env.DLQCTL_ARGS_JSON || "[]");
    dlqctlEnv = JSON.parse(process.env.DLQCTL_ENV_JSON || "{}");
  } catch (e) {
    fail(`DLQCTL_ARGS_JSON / DLQCTL_ENV_JSON is not JSON: ${e.message}`);
  }
  check(Array.isArray(dlqctlArgs) && dlqctlArgs.every((a) => typeof a === "string"),
    "DLQCTL_ARGS_JSON must be a JSON array of strings");
  const shots = process.env.SCREENSHOT_DIR || "";
  if (shots) mkdirSync(shots, { recursive: true });
  const run = Date.now().toString(36);
  const okEmail = `browser-ok-${run}@example.com`;
  const badEmail = `browser-bounce-${run}@example.com`;

  step(`launching ${process.env.CHROMIUM || "/usr/bin/chromium"} (timeouts × ${SCALE})`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    headless: true,
    timeout: WAIT_MS,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    const pageErrors = [];
    page.on("pageerror", (e) => {
      pageErrors.push(String(e));
      console.log(`[page error] ${e}`);
    });
    page.on("console", (m) => {
      if (m.type() === "error") console.log(`[page console] ${m.text()}`);
    });
    const shot = async (name) => {
      if (shots) await page.screenshot({ path: path.join(shots, name), fullPage: true });
    };
    const text = (sel) => page.locator(sel).first().textContent({ timeout: 1000 }).then((t) => (t ?? "").trim());
    const timelineTypes = () => page.$$eval('#timeline tr[data-testid="timeline-row"]',
      (rows) => rows.map((r) => r.getAttribute("data-type")));

    // 1. The live view shows the analytics-service's figures, as they are.
    step("live view: opening /");
    await page.goto(`${CONSOLE}/`);
    const shownCreated = await waitFor("the live view's orders.created", async () => {
      const t = await text('[data-testid="metric-orders.created"]');
      return /^\d+$/.test(t) ? Number(t) : null;
    }).catch(async (e) => {
      const err = await text("#live-error").catch(() => "");
      fail(`${e.message}${err ? `; the page says: ${err}` : ""}`);
    });
    const live = await http("GET", `${CONSOLE}/api/live`);
    check(live.status === 200 && live.json?.metrics, `GET /api/live answered ${live.status}: ${live.text.slice(0, 300)}`);
    const apiCreated = live.json.metrics["orders.created"];
    check(typeof apiCreated === "number" && shownCreated <= apiCreated,
      `the page shows orders.created ${shownCreated}, /api/live right after says ${apiCreated}`);
    step(`live view: orders.created ${shownCreated} shown, ${apiCreated} in /api/live`);
    await page.waitForSelector("#chart-rates .uplot");

    // 2. An order's timeline: created, confirmed, its email sent.
    const id1 = await placeOrder(ORDERS, okEmail);
    step(`order ${id1} placed; opening its timeline`);
    await page.goto(`${CONSOLE}/orders/${id1}`);
    const want1 = ["ORDER_CREATED", "ORDER_CONFIRMED", "NOTIFICATION_SENT"];
    const types1 = await waitFor(`the timeline of ${id1} to show ${want1.join(", ")}`, async () => {
      const types = await timelineTypes();
      return want1.every((t) => types.includes(t)) ? types : { ok: false, types };
    }, { everyMs: 500, onRetry: () => page.click("#order-refresh", { timeout: 1000 }) });
    check(types1.indexOf("ORDER_CREATED") < types1.indexOf("ORDER_CONFIRMED") &&
          types1.indexOf("ORDER_CONFIRMED") < types1.indexOf("NOTIFICATION_SENT"),
      `the timeline is not in saga order: ${types1.join(", ")}`);
    step(`timeline: ${types1.join(" → ")}`);
    const firstRow = page.locator('#timeline tr[data-testid="timeline-row"]').first();
    await firstRow.locator('[data-testid="record-toggle"]').click();
    const headers = await page.locator('#timeline tr.detail:not([hidden]) [data-testid="record-headers"]').first().textContent();
    check(headers.includes("ORDER_CREATED"), `the first record's headers do not name ORDER_CREATED: ${headers.slice(0, 200)}`);
    await shot("order.png");

    // 3. A notification that fails for good lands in notifications.dlq; the page shows it.
    const rule = await http("POST", `${PROVIDER}/admin/rules`, { match: { to: badEmail }, answer: "400" });
    check(rule.status < 300, `the provider refused the rule: ${rule.status} ${rule.text}`);
    const id2 = await placeOrder(ORDERS, badEmail);
    step(`order ${id2} placed for ${badEmail}, whose emails the provider refuses (400)`);
    await page.goto(`${CONSOLE}/dlq/notifications.dlq`);
    const row2 = page.locator(`#dlq-table tr[data-testid="dlq-row"][data-order-id="${id2}"]`).first();
    const ledgerKey = await waitFor(`${id2}'s dead letter, pending PERMANENT_ERROR, on the DLQ page`, async () => {
      if ((await row2.count()) === 0) return { ok: false, rows: await page.locator('#dlq-table tr[data-testid="dlq-row"]').count() };
      const status = await row2.getAttribute("data-status");
      const reason = (await row2.locator('[data-testid="dlq-reason"]').textContent())?.trim();
      return status === "pending" && reason === "PERMANENT_ERROR" ? row2.getAttribute("data-ledger-key") : { ok: false, status, reason };
    }, { everyMs: 1000, onRetry: () => page.click("#dlq-refresh", { timeout: 5000 }) });
    step(`DLQ page: ${ledgerKey} pending, PERMANENT_ERROR`);
    await shot("dlq.png");

    // 4. No token, no replay: the page says it was refused, and so does the API.
    await page.fill("#dlq-token", "");
    await row2.locator('[data-testid="dlq-select"]').check();
    await page.click("#dlq-replay");
    const refused = await waitFor("the page's refusal of a replay without a token", async () => {
      const t = await text("#dlq-message");
      return t.startsWith("refused:") ? t : { ok: false, message: t };
    });
    step(`without a token the page says: ${refused}`);
    const direct = await http("POST", `${CONSOLE}/api/dlq/notifications.dlq/replay`,
      { keys: [ledgerKey], dry_run: true, note: "", force: false });
    check(direct.status === 401, `POST …/replay without Authorization answered ${direct.status}, not 401: ${direct.text}`);
    step("without Authorization the API answers 401");

    // 5. Heal the provider; replay with the token: a preview of 1 record, confirmed.
    const healed = await http("DELETE", `${PROVIDER}/admin/rules`);
    check(healed.status < 300, `DELETE /admin/rules answered ${healed.status}`);
    await page.fill("#dlq-token", TOKEN);
    await row2.locator('[data-testid="dlq-select"]').check();
    await page.click("#dlq-replay");
    await page.waitForSelector("#confirm-dialog[open]");
    const preview = await text("#confirm-message");
    const planned = await page.$$eval("#confirm-planned tbody tr", (rows) => rows.map((r) => r.textContent));
    check(planned.length === 1 && planned[0].includes(ledgerKey),
      `the preview does not plan exactly ${ledgerKey}: ${JSON.stringify(planned)} (${preview})`);
    check(/\b1 record/.test(preview), `the preview's message does not say 1 record: ${preview}`);
    step(`preview: ${preview}`);
    await shot("replay-preview.png");
    await page.click("#confirm-ok");
    const result = await waitFor("the replay's result message", async () => {
      // One read of both: the box changes from the preview to the result in between two reads.
      const [t, cls] = await page.$eval("#dlq-message", (b) => [(b.textContent ?? "").trim(), b.className]);
      if (cls.includes("error")) fail(`the replay failed: ${t}`);
      return cls.includes("ok") ? t : { ok: false, message: t };
    });
    step(`replay: ${result}`);
    await waitFor(`${ledgerKey} to show replayed`, async () => {
      const r = page.locator(`#dlq-table tr[data-ledger-key="${ledgerKey}"]`);
      const s = (await r.count()) ? await r.getAttribute("data-status") : null;
      return s === "replayed" ? s : { ok: false, status: s };
    }, { everyMs: 1000, onRetry: () => page.click("#dlq-refresh", { timeout: 5000 }) });
    step(`DLQ page: ${ledgerKey} replayed`);

    // 6. The replayed notification is sent.
    await page.goto(`${CONSOLE}/orders/${id2}`);
    await waitFor(`NOTIFICATION_SENT on the timeline of ${id2}`, async () => {
      const types = await timelineTypes();
      return types.includes("NOTIFICATION_SENT") ? types : { ok: false, types };
    }, { everyMs: 500, onRetry: () => page.click("#order-refresh", { timeout: 1000 }) });
    step(`timeline of ${id2}: NOTIFICATION_SENT after the replay`);

    // 7. dlqctl agrees: that entry replayed, and the page's table is dlqctl's list.
    const args = ["list", "--topic", "notifications.dlq", "--json", ...dlqctlArgs];
    const out = await runDlqctl(DLQCTL, args, dlqctlEnv);
    let listed;
    try {
      listed = JSON.parse(out);
    } catch {
      fail(`dlqctl ${args.join(" ")} did not print JSON: ${out.slice(0, 300)}`);
    }
    check(Array.isArray(listed), "dlqctl list --json did not print an array");
    const byKey = new Map(listed.map((e) => [`${e.topic}/${e.partition}/${e.offset}`, e.status]));
    check(byKey.get(ledgerKey) === "replayed",
      `dlqctl says ${ledgerKey} is ${byKey.get(ledgerKey) ?? "absent"}, not replayed`);
    await page.goto(`${CONSOLE}/dlq/notifications.dlq`);
    // Polled from here, not page.waitForFunction: that evaluates a string in the page, which its
    // Content-Security-Policy (no 'unsafe-eval') refuses, as it should.
    await waitFor("the DLQ page to load", async () => {
      const summary = (await page.locator("#dlq-summary").textContent().catch(() => "")) ?? "";
      return /shown of/.test(summary) || (await page.locator("#dlq-error").isVisible());
    });
    const err = await page.locator("#dlq-error").isVisible() ? await text("#dlq-error") : "";
    check(!err, `the DLQ page says: ${err}`);
    const onPage = await page.$$eval('#dlq-table tr[data-testid="dlq-row"]',
      (rows) => rows.map((r) => [r.getAttribute("data-ledger-key"), r.getAttribute("data-status")]));
    const pageMap = new Map(onPage);
    const differences = [];
    for (const [k, s] of byKey) if (pageMap.get(k) !== s) differences.push(`${k}: dlqctl ${s}, page ${pageMap.get(k) ?? "absent"}`);
    for (const [k, s] of pageMap) if (!byKey.has(k)) differences.push(`${k}: page ${s}, dlqctl absent`);
    check(differences.length === 0, `the DLQ page and dlqctl disagree: ${differences.join("; ")}`);
    step(`dlqctl and the page agree on all ${byKey.size} dead letter(s)`);

    // The live view again, now that orders went through: its figures and charts for the docs.
    await page.goto(`${CONSOLE}/`);
    await waitFor("the live view to count the orders placed", async () => {
      const t = await text('[data-testid="metric-orders.created"]');
      return /^\d+$/.test(t) && Number(t) >= 2 ? Number(t) : null;
    });
    await page.waitForSelector("#chart-rates .uplot");
    await shot("live.png");

    check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(" | ")}`);
  } finally {
    await browser.close().catch(() => undefined);
  }
}

main().then(() => {
  step("PASS");
  process.exit(0);
}, (e) => {
  console.error(`[console.mjs] FAIL: ${e instanceof Failure ? e.message : e?.stack ?? e}`);
  process.exit(1);
});
