// Exact decimals for money. The API writes money as exact JSON numbers
// (api/money.go); parseExact keeps every number's digits as a string so that
// no amount ever passes through a float. Sums and comparisons here use
// BigInt; floats appear only for chart geometry and percentages.

/** A decimal number's exact text, e.g. "-12.345". */
export type Dec = string;

/**
 * JSON.parse that turns every number into its exact source text. Numbers are
 * rewritten to strings before parsing; strings inside the JSON are skipped.
 */
export function parseExact(text: string): unknown {
  let out = '';
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i];
    if (ch === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (ch === '-' || (ch >= '0' && ch <= '9')) {
      let j = i + 1;
      while (j < n && /[0-9eE.+-]/.test(text[j])) j++;
      out += text.slice(last, i) + '"' + text.slice(i, j) + '"';
      last = i = j;
      continue;
    }
    i++;
  }
  return JSON.parse(out + text.slice(last));
}

interface Fixed {
  units: bigint; // value × 10^scale
  scale: number;
}

function toFixed(d: Dec | number): Fixed {
  let s = String(d).trim();
  if (s === '' || s === 'null') return { units: 0n, scale: 0 };
  let exp = 0;
  const e = s.search(/[eE]/);
  if (e >= 0) {
    exp = parseInt(s.slice(e + 1), 10);
    s = s.slice(0, e);
  }
  const neg = s.startsWith('-');
  if (neg || s.startsWith('+')) s = s.slice(1);
  const [int, frac = ''] = s.split('.');
  let digits = (int || '0') + frac;
  let scale = frac.length - exp;
  if (scale < 0) {
    digits += '0'.repeat(-scale);
    scale = 0;
  }
  const units = BigInt(digits);
  return { units: neg ? -units : units, scale };
}

function align(a: Fixed, b: Fixed): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [a.units * 10n ** BigInt(scale - a.scale), b.units * 10n ** BigInt(scale - b.scale), scale];
}

function fromFixed(units: bigint, scale: number): Dec {
  const neg = units < 0n;
  let s = (neg ? -units : units).toString();
  if (scale > 0) {
    s = s.padStart(scale + 1, '0');
    s = s.slice(0, s.length - scale) + '.' + s.slice(s.length - scale);
    s = s.replace(/\.?0+$/, '');
  }
  return (neg && s !== '0' ? '-' : '') + s;
}

/** add returns a + b exactly. */
export function add(a: Dec | number, b: Dec | number): Dec {
  const [x, y, scale] = align(toFixed(a), toFixed(b));
  return fromFixed(x + y, scale);
}

/** sub returns a − b exactly. */
export function sub(a: Dec | number, b: Dec | number): Dec {
  const [x, y, scale] = align(toFixed(a), toFixed(b));
  return fromFixed(x - y, scale);
}

/** sum adds every value exactly; the sum of nothing is "0". */
export function sum(values: Iterable<Dec | number>): Dec {
  let acc: Dec = '0';
  for (const v of values) acc = add(acc, v);
  return acc;
}

/** cmp orders two decimals exactly: −1, 0 or 1. */
export function cmp(a: Dec | number, b: Dec | number): number {
  const [x, y] = align(toFixed(a), toFixed(b));
  return x < y ? -1 : x > y ? 1 : 0;
}

/** sign is −1, 0 or 1. */
export function sign(a: Dec | number): number {
  return cmp(a, '0');
}

/** toNumber is for chart geometry and percentages only, never for amounts shown. */
export function toNumber(a: Dec | number | null | undefined): number {
  return a == null ? 0 : Number(a);
}
