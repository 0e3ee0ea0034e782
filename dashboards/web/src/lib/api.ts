import { type Dec, parseExact } from './dec';

// The API client: the session is the HttpOnly cookie login sets (no token
// is ever in script reach: nothing in localStorage or sessionStorage), sent
// by the browser on every same-origin call; every answer is parsed with exact
// numbers; an error carries the API's own message
// (api/errors.go: {"detail": …, "errors": [{field, message}…]}).

/** Called on any 401: the app goes back to the login page. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

/** One problem of an invalid request (pipeline/event.Problem). */
export interface Problem {
  index?: number;
  field?: string;
  reason?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

/** errorMessage turns an API error body ({detail, errors}) into one line: the detail, then each problem's field and reason. */
export function errorMessage(status: number, body: unknown): string {
  const b = (body ?? {}) as { detail?: unknown; errors?: Problem[] };
  let msg = typeof b.detail === 'string' ? b.detail : `HTTP ${status}`;
  if (Array.isArray(b.errors) && b.errors.length) {
    msg += ': ' + b.errors.map((p) => [p.field, p.reason].filter(Boolean).join(' ')).join('; ');
  }
  return msg;
}

export async function request<T>(method: string, path: string, body?: unknown, form?: URLSearchParams): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let payload: BodyInit | undefined;
  if (form) {
    payload = form;
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, `the server is unreachable (${(e as Error).message})`);
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = parseExact(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith('/api/auth/')) {
      onUnauthorized();
    }
    const b = parsed as { errors?: Problem[] } | undefined;
    throw new ApiError(res.status, errorMessage(res.status, parsed), b?.errors ?? []);
  }
  return parsed as T;
}

export const get = <T>(path: string) => request<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {});
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, body);
export const del = <T>(path: string) => request<T>('DELETE', path);

/** qs builds a query string, leaving out empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? '?' + s : '';
}

/** unavailable reports whether a route is missing or switched off on this server (404/405/501/503). */
export function unavailable(e: unknown): boolean {
  return e instanceof ApiError && [404, 405, 501, 503].includes(e.status);
}

// ---- Shapes of the API (api/openapi.yaml). Numbers are exact decimal strings.

export interface User {
  id: Dec | string;
  email: string;
  username?: string;
  full_name?: string | null;
  is_active?: boolean;
  role?: string;
}

export interface LoginResponse {
  access_token: string;
  token_type: string;
  user: User;
}

/** login opens the session: the server sets its cookie; the token in the answer is left unused. */
export function login(email: string, password: string): Promise<LoginResponse> {
  return request<LoginResponse>('POST', '/api/auth/login', undefined, new URLSearchParams({ username: email, password }));
}

/** me is the session's user; an ApiError 401 when there is no session. */
export const me = () => get<User>('/api/auth/me');

/** logout ends the session (the server clears its cookie). */
export const logout = () => request<void>('POST', '/api/auth/logout');

/**
 * defined reads a ratio the API always sends as a number (clients of the
 * original product do arithmetic on it) beside its *_defined flag: null when
 * the flag is false (no revenue: no margin), so that it shows as "—", never 0 %.
 */
export function defined(n: Dec, isDefined: boolean): Dec | null {
  return isDefined ? n : null;
}

export interface DateRangeBody {
  start: string;
  end: string;
}

export interface Dashboard {
  summary: {
    total_usage_cost: Dec;
    total_revenue: Dec;
    total_profit: Dec;
    profit_margin_percentage: Dec;
    margin_defined: boolean;
    date_range: DateRangeBody;
    currency: string;
  };
  time_series: { date: string; usage_cost: Dec; revenue: Dec; profit: Dec }[];
  feature_metrics: { feature_name: string; usage_count: Dec; total_cost: Dec; revenue: Dec; profit_margin: Dec; margin_defined: boolean }[];
}

export interface CustomerRow {
  id: string;
  external_id: string;
  name: string;
  plan: string;
  usage: Dec;
  revenue: Dec;
  revenue_per_unit: Dec;
  revenue_per_unit_defined: boolean;
  cost: Dec;
  profit: Dec;
  margin_percentage: Dec;
  margin_defined: boolean;
}

export interface CustomerList {
  customers: CustomerRow[];
  total: Dec;
  currency: string;
}

export interface FeatureRow {
  feature: string;
  usage: Dec;
  /** The part of usage no rate card prices: its cost counts as 0 (unpriced, not free). */
  unpriced_quantity?: Dec;
  cost: Dec;
  revenue: Dec;
  profit: Dec;
  margin_percentage: Dec;
  margin_defined: boolean;
}

export interface SeriesRow {
  period: string;
  key: string;
  usage: Dec;
  cost: Dec;
  revenue: Dec;
  profit: Dec;
}

export interface Series {
  group_by: string;
  by: string;
  series: SeriesRow[];
}

export interface Reference {
  source: string;
  external_id: string;
}

export interface RevenueItem {
  date: string;
  source: string;
  id: string;
  kind: string;
  currency: string;
  amount: Dec;
}

export interface CustomerDetail {
  customer: CustomerRow;
  references: Reference[];
  daily_series: SeriesRow[];
  features: FeatureRow[];
  revenue_items: RevenueItem[];
  currency: string;
}

export type Severity = 'info' | 'warning' | 'critical';
export type InsightStatus = 'open' | 'acknowledged' | 'resolved';

export interface Insight {
  id: string;
  type: Severity;
  category: string;
  title: string;
  description: string;
  metric: { name: string; value: string };
  status: InsightStatus;
  customer?: { id: string; name: string };
  feature?: string;
  window: { start?: string; end?: string; [k: string]: unknown };
  evidence: Record<string, string>;
  first_seen: string;
  last_seen: string;
}

export interface Service {
  id: string;
  service_type: string;
  service_category: string;
  service_name: string;
  status: string;
  airbyte_source_id: string | null;
  airbyte_connection_id: string | null;
  last_sync: string | null;
  sync_interval_seconds: Dec;
  created_at: string;
}

export interface SyncRun {
  id: string;
  service_id: string;
  service_type: string;
  trigger: string;
  started_at: string;
  finished_at: string | null;
  status: string;
  records_read: Dec;
  events_emitted: Dec;
  records_skipped: Dec;
  error: string | null;
}

export interface AirbyteConnection {
  id: string;
  name: string;
  status: string;
  source_id: string;
  destination_id: string;
}

export interface Health {
  status: string;
  version: string;
  timestamp: string;
  checks?: Record<string, string>;
  detail?: string;
  [k: string]: unknown;
}
