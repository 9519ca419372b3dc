// The console daemon's JSON API (/tmp/h/console-api.md): types and fetch helpers. Every failure
// becomes an ApiError whose message is fit to show: the problem+json `detail`, or what went wrong.

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
}

export class ApiError extends Error {
  /** 0 when the console could not be reached at all. */
  readonly status: number;
  readonly problem: Problem | null;
  constructor(status: number, message: string, problem: Problem | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

export interface Config {
  jaeger_url: string | null;
  dlq_topics: string[];
  max_replays: number;
  operators: boolean;
}

/** The analytics-service's GET /api/metrics, verbatim: counters, and a few nested objects. */
export type MetricValue = number | string | boolean | null | MetricObject;
export interface MetricObject {
  [name: string]: MetricValue;
}

export interface ServiceHealth {
  name: string;
  url: string;
  status: "ready" | "unready" | "unreachable";
  detail?: string;
  checks: Record<string, string> | null;
}

export interface LagRow {
  service: string;
  loop: string;
  topic: string;
  partition: number;
  lag: number;
}

export interface Live {
  time_ms: number;
  metrics: MetricObject | null;
  metrics_error?: string;
  services: ServiceHealth[];
  lag: LagRow[];
  breaker: string | null;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface TimelineRecord {
  topic: string;
  partition: number;
  offset: number;
  type: string;
  timestamp_ms: number;
  gap_ms: number | null;
  fetched: boolean;
  time?: string;
  source?: string;
  id?: string;
  causation_id?: string;
  correlation_id?: string;
  trace_id?: string;
  key?: string;
  headers?: Record<string, string | null>;
  value?: Json;
}

export interface Timeline {
  order_id: string;
  state: { [key: string]: Json } | null;
  state_error?: string;
  waiting_for: string | null;
  truncated: boolean;
  records: TimelineRecord[];
}

export interface SearchHit {
  order_id: string;
  customer_id: string;
  email: string;
  created_ms: number;
}

export interface SearchResult {
  query: string;
  orders: SearchHit[];
  truncated: boolean;
}

export interface DlqEntry {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  original_topic: string;
  reason: string;
  last_error: string;
  retry_count: number;
  replay_count: number;
  failed_at: string | null;
  status: "pending" | "replayed" | "discarded";
  headers: Record<string, string | null>;
  original_partition?: number;
  original_offset?: number;
  resolution?: Json;
  ledger_key: string;
  age_seconds: number | null;
  value?: Json;
}

export interface DlqList {
  topic: string;
  total: number;
  truncated: boolean;
  entries: DlqEntry[];
}

/** The filters of GET /api/dlq/{topic}, also the `filters` of an action. */
export const DLQ_FILTERS = ["status", "reason", "order_id", "error_contains", "since", "until",
  "partition"] as const;
export type DlqFilterName = (typeof DLQ_FILTERS)[number];
export type DlqFilters = Partial<Record<DlqFilterName, string>>;

export interface ActionRequest {
  keys: string[];
  dry_run: boolean;
  note: string;
  force: boolean;
}

export interface PlannedAction {
  ledger_key: string;
  order_id: string;
  reason: string;
  to: string;
  replay: number;
}

export interface ActionResult {
  topic: string;
  action: "replay" | "discard";
  dry_run: boolean;
  user: string;
  planned: PlannedAction[];
  skipped: Record<string, number>;
  done: number;
  message: string;
}

function isProblem(x: unknown): x is Problem {
  return typeof x === "object" && x !== null && ("detail" in x || "title" in x);
}

async function request<T>(method: string, path: string, body?: unknown,
                          token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, `network error: the console did not answer (${String(e)})`);
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === "" ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const problem = isProblem(parsed) ? parsed : null;
    const what = problem?.detail || problem?.title || text.trim().slice(0, 300) || res.statusText;
    throw new ApiError(res.status, `${res.status}: ${what}`, problem);
  }
  if (parsed === undefined) {
    throw new ApiError(res.status, `${method} ${path} answered ${res.status} without JSON`);
  }
  return parsed as T;
}

export const getJson = <T>(path: string): Promise<T> => request<T>("GET", path);
export const postJson = <T>(path: string, body: unknown, token?: string): Promise<T> =>
  request<T>("POST", path, body, token);

let configPromise: Promise<Config> | null = null;
/** GET /api/config, once; a failure is not cached. */
export function config(): Promise<Config> {
  if (!configPromise) {
    configPromise = getJson<Config>("/api/config").catch((e: unknown) => {
      configPromise = null;
      throw e;
    });
  }
  return configPromise;
}

/** What to show for any error. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
