import { describe, expect, it } from 'vitest';
import { activeCustomers, byPlan, chartRows, delta, marginPct, pointsDelta, sortRows } from './metrics';
import { days, lastDays, length, previous, valid } from './range';

describe('delta', () => {
  it.each([
    ['110', '100', { kind: 'pct', pct: 10 }],
    ['90', '100', { kind: 'pct', pct: -10 }],
    // A loss shrinking from −100 to −50 is an improvement: +50 %.
    ['-50', '-100', { kind: 'pct', pct: 50 }],
    ['5', '0', { kind: 'new' }],
    ['-5', '0.00', { kind: 'new' }],
    ['0', '0', { kind: 'flat' }],
  ] as const)('%s against %s', (cur, prev, want) => {
    const d = delta(cur, prev);
    if (want.kind === 'pct') {
      expect(d.kind).toBe('pct');
      expect((d as { pct: number }).pct).toBeCloseTo(want.pct, 10);
    } else expect(d).toEqual(want);
  });
  it('has no delta without a previous value', () => {
    expect(delta('1', null)).toEqual({ kind: 'none' });
  });
  it('margin changes in points', () => {
    expect(pointsDelta('40.5', '42')).toBeCloseTo(-1.5, 10);
    expect(pointsDelta(null, '42')).toBeNull();
  });
});

describe('chartRows', () => {
  const range = { start: '2026-01-01', end: '2026-01-04' };
  it('merges money and usage by day, fills missing days with zeros and adds exactly', () => {
    const rows = chartRows(
      range,
      [
        { date: '2026-01-01', usage_cost: '0.1', revenue: '10' },
        { date: '2026-01-03', usage_cost: '2.5', revenue: '0' },
        { date: '2025-12-31', usage_cost: '99', revenue: '99' }, // outside the range
      ],
      [
        { period: '2026-01-01', usage: '100' },
        { period: '2026-01-01', usage: '0.5' }, // another feature the same day
        { period: '2026-01-04', usage: '7' },
      ],
    );
    expect(rows.map((r) => [r.date, r.revenue, r.cost, r.usage])).toEqual([
      ['2026-01-01', '10', '0.1', '100.5'],
      ['2026-01-02', '0', '0', '0'],
      ['2026-01-03', '0', '2.5', '0'],
      ['2026-01-04', '0', '0', '7'],
    ]);
    expect(rows[0].nUsage).toBe(100.5);
  });
  it('adds two rows of one day (a customer series has one per feature)', () => {
    const rows = chartRows(range, [
      { date: '2026-01-02', usage_cost: '0.1', revenue: '0' },
      { date: '2026-01-02', usage_cost: '0.2', revenue: '3' },
    ], []);
    expect(rows[1]).toMatchObject({ cost: '0.3', revenue: '3' });
  });
});

describe('sortRows', () => {
  const rows = [
    { name: 'b', revenue: '9.5', margin: 10 as number | null },
    { name: 'a', revenue: '10', margin: null },
    { name: 'c', revenue: '-1', margin: -5 },
  ];
  it('compares decimal strings as numbers, not text', () => {
    expect(sortRows(rows, 'revenue', 'desc').map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(sortRows(rows, 'revenue', 'asc').map((r) => r.name)).toEqual(['c', 'b', 'a']);
  });
  it('sorts text and puts nulls last both ways', () => {
    expect(sortRows(rows, 'name', 'asc').map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(sortRows(rows, 'margin', 'desc').map((r) => r.name)).toEqual(['b', 'c', 'a']);
    expect(sortRows(rows, 'margin', 'asc').map((r) => r.name)).toEqual(['c', 'b', 'a']);
  });
});

describe('plans and customers', () => {
  const customers = [
    { plan: 'pro', usage: '1', revenue: '0.1', cost: '0.05', profit: '0.05' },
    { plan: 'pro', usage: '2', revenue: '0.2', cost: '0.05', profit: '0.15' },
    { plan: '', usage: '0', revenue: '0', cost: '0', profit: '0' },
  ];
  it('adds customers per plan exactly', () => {
    expect(byPlan(customers)).toEqual([
      { plan: 'pro', customers: 2, usage: '3', revenue: '0.3', cost: '0.1', profit: '0.2' },
      { plan: '', customers: 1, usage: '0', revenue: '0', cost: '0', profit: '0' },
    ]);
    expect(marginPct('0.3', '0.2')).toBeCloseTo(66.667, 2);
    expect(marginPct('0', '5')).toBeNull();
  });
  it('counts the customers with any activity', () => {
    expect(activeCustomers(customers)).toBe(2);
  });
});

describe('ranges', () => {
  it('presets end today and include it', () => {
    const r = lastDays(7, new Date(Date.UTC(2026, 2, 10, 15)));
    expect(r).toEqual({ start: '2026-03-04', end: '2026-03-10' });
    expect(length(r)).toBe(7);
    expect(days(r)).toHaveLength(7);
  });
  it('the previous period has the same length and ends the day before', () => {
    expect(previous({ start: '2026-03-01', end: '2026-03-30' })).toEqual({ start: '2026-01-30', end: '2026-02-28' });
  });
  it('validates custom ranges', () => {
    expect(valid({ start: '2026-03-02', end: '2026-03-01' })).toBe(false);
    expect(valid({ start: '2026-03-01', end: '2026-03-01' })).toBe(true);
    expect(valid({ start: '', end: '2026-03-01' })).toBe(false);
  });
});
