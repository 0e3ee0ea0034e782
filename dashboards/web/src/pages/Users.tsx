import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, patch, type User } from '../lib/api';
import { activeToggle, changeDone, roleChange, ROLES, userPath, type Role, type UserChange } from '../lib/users';
import { Badge, Button, Card, Dialog, inputClass, Skeleton, useToast } from '../components/ui';
import { ErrorNote } from '../components/common';

/**
 * Users lists the users for an admin: change a role, deactivate or
 * reactivate, delete (after a confirmation). Each change applies to the
 * user's next request; a refusal (the last active admin, 403…) shows the
 * API's message. New users come from POST /api/auth/register or `uvr user create`.
 */
export function Users({ me }: { me: User }) {
  const [deleting, setDeleting] = useState<User | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const list = useQuery({ queryKey: ['users'], queryFn: () => get<{ users: User[] }>('/api/users') });
  const update = useMutation({
    mutationFn: ({ u, change }: { u: User; change: UserChange }) => patch<User>(userPath(String(u.id)), change),
    onSuccess: (r, { change }) => {
      toast('success', changeDone(r.email, change));
      void qc.invalidateQueries({ queryKey: ['users'] });
    },
    onError: (e) => toast('error', e.message),
  });
  const remove = useMutation({
    mutationFn: (u: User) => del<void>(userPath(String(u.id))),
    onSuccess: (_, u) => {
      toast('success', `${u.email} deleted`);
      setDeleting(null);
      void qc.invalidateQueries({ queryKey: ['users'] });
    },
    onError: (e) => toast('error', e.message),
  });
  const busy = update.isPending || remove.isPending;

  return (
    <div className="flex flex-col gap-4">
      <h1 className="text-xl font-semibold">Users</h1>
      <Card flush>
        {list.error ? (
          <div className="p-4">
            <ErrorNote error={list.error} what="the users" />
          </div>
        ) : list.isPending ? (
          <div className="flex flex-col gap-2 p-4">
            {Array.from({ length: 3 }, (_, i) => (
              <Skeleton key={i} className="h-10" />
            ))}
          </div>
        ) : (
          <table className="w-full text-sm" data-testid="users">
            <thead className="bg-slate-50 text-xs text-slate-500 dark:bg-slate-900 dark:text-slate-400">
              <tr>
                <th className="px-3 py-2 text-left font-medium">Email</th>
                <th className="px-3 py-2 text-left font-medium">Role</th>
                <th className="px-3 py-2 text-left font-medium">Status</th>
                <th className="px-3 py-2 text-right font-medium">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.users.map((u) => {
                const toggle = activeToggle(u);
                const self = String(u.id) === String(me.id);
                return (
                  <tr key={String(u.id)} data-testid="user-row" className="border-t border-slate-100 dark:border-slate-800">
                    <td className="px-3 py-2 font-medium">
                      {u.email}
                      {self && <span className="ml-2 text-xs font-normal text-slate-500">(you)</span>}
                    </td>
                    <td className="px-3 py-2">
                      <select
                        aria-label={`Role of ${u.email}`}
                        className={inputClass}
                        value={u.role}
                        disabled={busy}
                        onChange={(e) => {
                          const change = roleChange(u, e.target.value as Role);
                          if (change) update.mutate({ u, change });
                        }}
                      >
                        {ROLES.map((r) => (
                          <option key={r.id} value={r.id}>
                            {r.label}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td className="px-3 py-2">
                      <Badge tone={u.is_active ? 'green' : 'slate'}>{u.is_active ? 'active' : 'inactive'}</Badge>
                    </td>
                    <td className="px-3 py-2 text-right">
                      <span className="inline-flex gap-2">
                        <Button aria-label={`${toggle.label} ${u.email}`} onClick={() => update.mutate({ u, change: toggle.change })} disabled={busy}>
                          {toggle.label}
                        </Button>
                        <Button variant="ghost" className="text-rose-600" aria-label={`Delete ${u.email}`} onClick={() => setDeleting(u)}>
                          Delete
                        </Button>
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Card>
      <Dialog open={deleting != null} onClose={() => setDeleting(null)} title="Delete user">
        {deleting && (
          <div className="flex flex-col gap-4 text-sm">
            <p>
              Delete <strong>{deleting.email}</strong>? Their session and the API keys they created stop working at once. To keep the account for later, deactivate it instead.
            </p>
            <div className="flex justify-end gap-2">
              <Button onClick={() => setDeleting(null)}>Cancel</Button>
              <Button variant="danger" onClick={() => remove.mutate(deleting)} disabled={remove.isPending}>
                Delete
              </Button>
            </div>
          </div>
        )}
      </Dialog>
    </div>
  );
}
