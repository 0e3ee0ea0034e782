import { describe, expect, it } from 'vitest';
import { day, money, percent, quantity, tone } from './format';

describe('money', () => {
  it.each([
    ['1234.5', 'USD', 'en-US', '$1,234.50'],
    ['-12.3', 'USD', 'en-US', '-$12.30'],
    ['1234.5', 'EUR', 'de-DE', '1.234,50\u00a0€'],
    ['1234', 'JPY', 'ja-JP', '￥1,234.00'],
    ['0', 'GBP', 'en-GB', '£0.00'],
  ])('%s %s in %s is %s', (v, cur, loc, want) => {
    expect(money(v, cur, loc)).toBe(want);
  });
  it('formats the exact decimal text, beyond float precision', () => {
    // As a float 12345678901234567.89 would print …568.00.
    expect(money('12345678901234567.89', 'USD', 'en-US')).toBe('$12,345,678,901,234,567.89');
  });
  it('shows a missing amount as a dash', () => {
    expect(money(null, 'USD', 'en-US')).toBe('—');
  });
});

describe('other numbers', () => {
  it('formats quantities, percentages and days', () => {
    expect(quantity('1234567.891', 'en-US')).toBe('1,234,567.89');
    expect(percent('42.25', 'en-US')).toBe('42.3%');
    expect(percent(-3, 'en-US', true)).toBe('-3.0%');
    expect(percent(null)).toBe('—');
    expect(day('2026-03-04', 'en-US')).toBe('Mar 4');
  });
  it('tones amounts by sign', () => {
    expect(tone('-0.01')).toBe('neg');
    expect(tone('0.00')).toBe('zero');
    expect(tone('5')).toBe('pos');
  });
});
