// Date ranges as the API takes them: start_date and end_date, YYYY-MM-DD,
// both included.

export interface DateRange {
  start: string;
  end: string;
}

export const PRESETS = [7, 30, 90] as const;

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function ms(d: string): number {
  const [y, m, dd] = d.split('-').map(Number);
  return Date.UTC(y, m - 1, dd);
}

const DAY = 86_400_000;

/** lastDays is the range of n days ending today (UTC), today included. */
export function lastDays(n: number, today: Date = new Date()): DateRange {
  const end = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  return { start: iso(end - (n - 1) * DAY), end: iso(end) };
}

/** days lists every date of the range in order. */
export function days(r: DateRange): string[] {
  const out: string[] = [];
  for (let t = ms(r.start); t <= ms(r.end); t += DAY) out.push(iso(t));
  return out;
}

/** length is the number of days in the range. */
export function length(r: DateRange): number {
  return Math.round((ms(r.end) - ms(r.start)) / DAY) + 1;
}

/** previous is the range of the same length that ends the day before r starts. */
export function previous(r: DateRange): DateRange {
  const n = length(r);
  const end = ms(r.start) - DAY;
  return { start: iso(end - (n - 1) * DAY), end: iso(end) };
}

/** valid reports whether both ends are dates and start ≤ end. */
export function valid(r: DateRange): boolean {
  const re = /^\d{4}-\d{2}-\d{2}$/;
  return re.test(r.start) && re.test(r.end) && !Number.isNaN(ms(r.start)) && ms(r.start) <= ms(r.end);
}
