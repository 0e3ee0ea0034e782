import { describe, expect, it } from 'vitest';
import { errorMessage, qs } from './api';

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
