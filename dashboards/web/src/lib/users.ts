import type { User } from './api';

// User administration (GET /api/users, PATCH and DELETE /api/users/{id};
// admin only). The API decides what may change: the last active admin cannot
// be demoted, deactivated or deleted (409, its detail says why), so the page
// offers every control and shows the API's answer rather than guessing.

export type Role = 'admin' | 'analyst' | 'viewer';

/** The roles an admin may give (api/access: Role.Valid), most powerful first. */
export const ROLES: { id: Role; label: string }[] = [
  { id: 'admin', label: 'Admin' },
  { id: 'analyst', label: 'Analyst' },
  { id: 'viewer', label: 'Viewer' },
];

/** isAdmin: the session's user may administer users (and sees the Users page). */
export function isAdmin(u: Pick<User, 'role'> | null | undefined): boolean {
  return u?.role === 'admin';
}

/** userPath is the API path of one user; the id is the API's, escaped. */
export function userPath(id: string): string {
  return `/api/users/${encodeURIComponent(id)}`;
}

/** The body of PATCH /api/users/{id}: either field or both. */
export interface UserChange {
  role?: Role;
  is_active?: boolean;
}

/** roleChange is the PATCH body giving u the role, or null when it already has it. */
export function roleChange(u: Pick<User, 'role'>, role: Role): UserChange | null {
  return u.role === role ? null : { role };
}

/** activeToggle is what the activation button of u does: its label and the PATCH body. */
export function activeToggle(u: Pick<User, 'is_active'>): { label: 'Activate' | 'Deactivate'; change: UserChange } {
  return u.is_active ? { label: 'Deactivate', change: { is_active: false } } : { label: 'Activate', change: { is_active: true } };
}

/** changeDone is the confirmation shown once the API applied change to email. */
export function changeDone(email: string, change: UserChange): string {
  const parts: string[] = [];
  if (change.role) parts.push(`is now ${change.role}`);
  if (change.is_active !== undefined) parts.push(change.is_active ? 'is active again' : 'is deactivated');
  return `${email} ${parts.join(' and ')}`;
}
