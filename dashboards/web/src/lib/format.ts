import { type Dec, sign } from './dec';

// Number formatting with Intl.NumberFormat. Amounts are formatted from their
// exact decimal text: Intl formats a numeric string without turning it into
// a float (ECMA-402 "Intl.NumberFormat v3"), so 1234567890123.45 keeps its cents.

const cache = new Map<string, Intl.NumberFormat>();

function nf(locale: string | undefined, opts: Intl.NumberFormatOptions): Intl.NumberFormat {
  const key = (locale ?? '') + JSON.stringify(opts);
  let f = cache.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, opts);
    cache.set(key, f);
  }
  return f;
}

type Formattable = Dec | number | null | undefined;

// Intl's typings predate string inputs; the runtime takes them exactly.
function fmt(f: Intl.NumberFormat, v: Dec | number): string {
  return f.format(v as unknown as number);
}

/** money formats an amount in currency, e.g. "$1,234.50"; null is "—". */
export function money(v: Formattable, currency: string, locale?: string): string {
  if (v == null || v === '') return '—';
  return fmt(nf(locale, { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 }), v);
}

/** compactMoney is for axes and tight cards: "$1.2K". */
export function compactMoney(v: Formattable, currency: string, locale?: string): string {
  if (v == null || v === '') return '—';
  return fmt(nf(locale, { style: 'currency', currency, notation: 'compact', maximumFractionDigits: 1 }), v);
}

/** quantity formats a usage quantity or count: "1,234,567" or "12.5". */
export function quantity(v: Formattable, locale?: string): string {
  if (v == null || v === '') return '—';
  return fmt(nf(locale, { maximumFractionDigits: 2 }), v);
}

/** compactQuantity: "1.2M". */
export function compactQuantity(v: Formattable, locale?: string): string {
  if (v == null || v === '') return '—';
  return fmt(nf(locale, { notation: 'compact', maximumFractionDigits: 1 }), v);
}

/** percent formats a value already in percent (42.5 ⇒ "42.5%"). */
export function percent(v: Formattable, locale?: string, signed = false): string {
  if (v == null || v === '') return '—';
  const f = nf(locale, { maximumFractionDigits: 1, minimumFractionDigits: 1, signDisplay: signed ? 'exceptZero' : 'auto' });
  return fmt(f, v) + '%';
}

/** tone says how to color an amount: profit green, loss red. */
export function tone(v: Formattable): 'pos' | 'neg' | 'zero' {
  if (v == null || v === '') return 'zero';
  const s = sign(v);
  return s > 0 ? 'pos' : s < 0 ? 'neg' : 'zero';
}

/** day formats a YYYY-MM-DD date as "Mar 4" in the locale, read as UTC. */
export function day(d: string, locale?: string): string {
  const [y, m, dd] = d.split('-').map(Number);
  return new Intl.DateTimeFormat(locale, { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(Date.UTC(y, m - 1, dd));
}

/** dateTime formats an RFC 3339 time in the user's zone. */
export function dateTime(t: string | null | undefined, locale?: string): string {
  if (!t) return 'never';
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(t));
}
