import { describe, expect, it } from 'vitest';
import { defined, errorMessage, qs } from './api';
import { type Dec, parseExact } from './dec';

describe('errorMessage', () => {
  it('shows the API detail and each problem with its field', () => {
    expect(
      errorMessage(400, {
        detail: 'invalid event',
        errors: [
          { field: 'data.amount', reason: 'must be a decimal' },
          { field: 'time', reason: 'is required' },
        ],
      }),
    ).toBe('invalid event: data.amount must be a decimal; time is required');
  });
  it('falls back to the status without a body', () => {
    expect(errorMessage(502, undefined)).toBe('HTTP 502');
  });
});

describe('qs', () => {
  it('leaves out empty values', () => {
    expect(qs({ status: 'open', severity: '', kind: undefined, limit: 5 })).toBe('?status=open&limit=5');
    expect(qs({})).toBe('');
  });
});

describe('defined', () => {
  it('reads the flag, not the number: an undefined margin is no margin, not 0 %', () => {
    const b = parseExact('{"a":{"profit_margin":0,"margin_defined":false},"b":{"profit_margin":0,"margin_defined":true}}') as Record<string, { profit_margin: Dec; margin_defined: boolean }>;
    expect(defined(b.a.profit_margin, b.a.margin_defined)).toBeNull();
    expect(defined(b.b.profit_margin, b.b.margin_defined)).not.toBeNull();
  });
});
