import { type Dec, add, cmp, toNumber } from './dec';
import { days, type DateRange } from './range';

/**
 * delta is the change of a KPI against the previous period, in percent of
 * the previous value's size. With a previous value of zero there is no
 * percentage: "new" when the value appeared, "flat" when both are zero.
 */
export type Delta = { kind: 'pct'; pct: number } | { kind: 'new' } | { kind: 'flat' } | { kind: 'none' };

export function delta(current: Dec | number | null | undefined, prev: Dec | number | null | undefined): Delta {
  if (current == null || prev == null) return { kind: 'none' };
  if (cmp(prev, 0) === 0) return cmp(current, 0) === 0 ? { kind: 'flat' } : { kind: 'new' };
  const c = toNumber(current);
  const p = toNumber(prev);
  return { kind: 'pct', pct: ((c - p) / Math.abs(p)) * 100 };
}

/** pointsDelta is the change of a percentage KPI (margin) in points. */
export function pointsDelta(current: Dec | null | undefined, prev: Dec | null | undefined): number | null {
  if (current == null || prev == null) return null;
  return toNumber(current) - toNumber(prev);
}

export interface MoneyDay {
  date: string;
  usage_cost: Dec;
  revenue: Dec;
}

export interface UsagePoint {
  period: string;
  usage: Dec;
}

/** One day of the overview chart. Amounts stay exact; the n* twins are for plotting. */
export interface ChartRow {
  date: string;
  revenue: Dec;
  cost: Dec;
  usage: Dec;
  nRevenue: number;
  nCost: number;
  nUsage: number;
}

/**
 * chartRows merges the dashboard's daily money with the usage series (one
 * point per day and key; the keys of a day are added exactly) into one row
 * per day of the range. A day without data is a zero row, so the x axis is
 * continuous; points outside the range are ignored.
 */
export function chartRows(range: DateRange, money: MoneyDay[], usage: UsagePoint[]): ChartRow[] {
  const byDay = new Map<string, { revenue: Dec; cost: Dec; usage: Dec }>();
  for (const d of days(range)) byDay.set(d, { revenue: '0', cost: '0', usage: '0' });
  for (const m of money) {
    const row = byDay.get(m.date);
    if (row) {
      row.revenue = add(row.revenue, m.revenue);
      row.cost = add(row.cost, m.usage_cost);
    }
  }
  for (const u of usage) {
    const row = byDay.get(u.period);
    if (row) row.usage = add(row.usage, u.usage);
  }
  return [...byDay].map(([date, r]) => ({
    date,
    ...r,
    nRevenue: toNumber(r.revenue),
    nCost: toNumber(r.cost),
    nUsage: toNumber(r.usage),
  }));
}

/** marginPct is profit over revenue in percent; null without revenue. */
export function marginPct(revenue: Dec, profit: Dec): number | null {
  if (cmp(revenue, 0) === 0) return null;
  return (toNumber(profit) / toNumber(revenue)) * 100;
}

export type SortDir = 'asc' | 'desc';

/**
 * sortRows orders rows by a column: decimals (strings of digits) compare
 * exactly, text by locale; nulls go last in either direction.
 */
export function sortRows<T>(rows: readonly T[], key: keyof T, dir: SortDir): T[] {
  const num = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
  const f = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[key] as unknown;
    const y = b[key] as unknown;
    if (x == null || x === '') return y == null || y === '' ? 0 : 1;
    if (y == null || y === '') return -1;
    if (typeof x === 'string' && typeof y === 'string' && num.test(x) && num.test(y)) return f * cmp(x, y);
    if (typeof x === 'number' && typeof y === 'number') return f * (x - y);
    return f * String(x).localeCompare(String(y));
  });
}

export interface PlanRow {
  plan: string;
  customers: number;
  usage: Dec;
  revenue: Dec;
  cost: Dec;
  profit: Dec;
}

/** byPlan adds the customers' exact totals per plan ("" is shown as "no plan"). */
export function byPlan(customers: { plan: string; usage: Dec; revenue: Dec; cost: Dec; profit: Dec }[]): PlanRow[] {
  const plans = new Map<string, PlanRow>();
  for (const c of customers) {
    let p = plans.get(c.plan);
    if (!p) {
      p = { plan: c.plan, customers: 0, usage: '0', revenue: '0', cost: '0', profit: '0' };
      plans.set(c.plan, p);
    }
    p.customers++;
    p.usage = add(p.usage, c.usage);
    p.revenue = add(p.revenue, c.revenue);
    p.cost = add(p.cost, c.cost);
    p.profit = add(p.profit, c.profit);
  }
  return [...plans.values()];
}

/** activeCustomers counts the customers with usage or revenue in the range. */
export function activeCustomers(customers: { usage: Dec; revenue: Dec; cost: Dec }[]): number {
  return customers.filter((c) => cmp(c.usage, 0) !== 0 || cmp(c.revenue, 0) !== 0 || cmp(c.cost, 0) !== 0).length;
}

