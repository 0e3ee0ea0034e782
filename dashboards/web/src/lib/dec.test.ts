import { describe, expect, it } from 'vitest';
import { add, cmp, parseExact, sub, sum } from './dec';

describe('parseExact', () => {
  it('keeps every digit of a number, where JSON.parse would round', () => {
    const v = parseExact('{"a": 12345678901234567.89, "b": [0.1, -2e3, 7], "s": "1.5 not a number", "n": null, "t": true}');
    expect(v).toEqual({ a: '12345678901234567.89', b: ['0.1', '-2e3', '7'], s: '1.5 not a number', n: null, t: true });
  });
  it('skips numbers inside strings, escaped quotes included', () => {
    expect(parseExact('{"k\\"1": "x\\" 3", "v": 4}')).toEqual({ 'k"1': 'x" 3', v: '4' });
  });
});

describe('decimal arithmetic', () => {
  it.each([
    ['0.1', '0.2', '0.3'],
    ['1.005', '-1.005', '0'],
    ['-0.5', '0.25', '-0.25'],
    ['12345678901234567.89', '0.11', '12345678901234568'],
    ['1e2', '0.5', '100.5'],
  ])('%s + %s = %s', (a, b, want) => {
    expect(add(a, b)).toBe(want);
  });
  it('subtracts and sums exactly', () => {
    expect(sub('10', '0.01')).toBe('9.99');
    expect(sum(['0.1', '0.1', '0.1'])).toBe('0.3');
    expect(sum([])).toBe('0');
  });
  it('compares across scales', () => {
    expect(cmp('1.10', '1.1')).toBe(0);
    expect(cmp('-1', '0.5')).toBe(-1);
    expect(cmp('100000000000000000.01', '100000000000000000')).toBe(1);
  });
});
