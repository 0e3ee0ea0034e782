import { describe, expect, it } from 'vitest';
import { errorMessage } from './api';
import { activeToggle, changeDone, isAdmin, roleChange, ROLES, userPath } from './users';

describe('isAdmin', () => {
  it.each([
    [{ role: 'admin' }, true],
    [{ role: 'analyst' }, false],
    [{ role: 'viewer' }, false],
    // An ingest API key's stand-in user, or an answer without a role.
    [{ role: 'ingest' }, false],
    [{}, false],
    [null, false],
  ])('%j → %s', (u, want) => {
    expect(isAdmin(u)).toBe(want);
  });
});

describe('ROLES', () => {
  it('are the roles the API accepts (api/access Role.Valid)', () => {
    expect(ROLES.map((r) => r.id)).toEqual(['admin', 'analyst', 'viewer']);
  });
});

describe('userPath', () => {
  it.each([
    ['3f2a9c', '/api/users/3f2a9c'],
    // An id is the API's; it cannot reach another route.
    ['../services', '/api/users/..%2Fservices'],
    ['a b?c', '/api/users/a%20b%3Fc'],
  ])('%s → %s', (id, want) => {
    expect(userPath(id)).toBe(want);
  });
});

describe('roleChange', () => {
  it.each([
    ['viewer', 'analyst', { role: 'analyst' }],
    ['admin', 'viewer', { role: 'viewer' }],
    ['analyst', 'analyst', null],
  ] as const)('%s to %s sends %j', (from, to, want) => {
    expect(roleChange({ role: from }, to)).toEqual(want);
  });
});

describe('activeToggle', () => {
  it.each([
    [true, 'Deactivate', { is_active: false }],
    [false, 'Activate', { is_active: true }],
    // A user without the flag reads as inactive: the button offers to activate it.
    [undefined, 'Activate', { is_active: true }],
  ])('is_active %s: %s sends %j', (active, label, change) => {
    expect(activeToggle({ is_active: active })).toEqual({ label, change });
  });
});

describe('changeDone', () => {
  it.each([
    [{ role: 'analyst' }, 'ana@example.com is now analyst'],
    [{ is_active: false }, 'ana@example.com is deactivated'],
    [{ is_active: true }, 'ana@example.com is active again'],
    [{ role: 'viewer', is_active: true }, 'ana@example.com is now viewer and is active again'],
  ] as const)('%j → %s', (change, want) => {
    expect(changeDone('ana@example.com', change)).toBe(want);
  });
});

describe('the API refusals a user sees', () => {
  // The bodies api/errors.go writes for these refusals: the page shows the detail as is.
  it.each([
    [409, { detail: 'the last active admin cannot be demoted: make another user an admin first' }, 'the last active admin cannot be demoted: make another user an admin first'],
    [403, { detail: 'the analyst role may not do this; it needs admin' }, 'the analyst role may not do this; it needs admin'],
    [400, { detail: 'role must be admin, analyst or viewer', errors: [{ index: -1, field: 'role', reason: 'role must be admin, analyst or viewer' }] }, 'role must be admin, analyst or viewer: role role must be admin, analyst or viewer'],
    [404, { detail: 'no such user' }, 'no such user'],
  ])('%i', (status, body, want) => {
    expect(errorMessage(status, body)).toBe(want);
  });
});
