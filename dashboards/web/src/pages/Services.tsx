import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, post, type Service } from '../lib/api';
import { fieldLabel, multiline, secret, typeLabel, type Category, type ServiceType } from '../lib/catalog';
import * as f from '../lib/format';
import { Badge, Button, Card, cx, Dialog, Empty, inputClass, Skeleton, useToast } from '../components/ui';
import { ErrorNote } from '../components/common';

export function Services() {
  const [adding, setAdding] = useState(false);
  const [deleting, setDeleting] = useState<Service | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const list = useQuery({ queryKey: ['services'], queryFn: () => get<{ services: Service[] }>('/api/services') });
  const sync = useMutation({
    mutationFn: (s: Service) => post<{ message?: string }>(`/api/services/${encodeURIComponent(s.id)}/sync`),
    onSuccess: (r, s) => {
      toast('success', r.message ?? `Sync of ${s.service_name} requested`);
      void qc.invalidateQueries({ queryKey: ['services'] });
      void qc.invalidateQueries({ queryKey: ['sync-runs'] });
    },
    onError: (e) => toast('error', e.message),
  });
  const remove = useMutation({
    mutationFn: (s: Service) => del<{ message?: string }>(`/api/services/${encodeURIComponent(s.id)}`),
    onSuccess: (r) => {
      toast('success', r.message ?? 'Service deleted');
      setDeleting(null);
      void qc.invalidateQueries({ queryKey: ['services'] });
    },
    onError: (e) => toast('error', e.message),
  });

  return (
    <div className="flex flex-col gap-4">
      <div className="flex items-center gap-3">
        <h1 className="mr-auto text-xl font-semibold">Services</h1>
        <Button variant="primary" onClick={() => setAdding(true)}>
          + Add service
        </Button>
      </div>
      <Card flush>
        {list.error ? (
          <div className="p-4">
            <ErrorNote error={list.error} what="the services" />
          </div>
        ) : list.isPending ? (
          <div className="flex flex-col gap-2 p-4">
            {Array.from({ length: 3 }, (_, i) => (
              <Skeleton key={i} className="h-10" />
            ))}
          </div>
        ) : list.data.services.length === 0 ? (
          <Empty title="No services connected">
            <p>Add a usage source (OpenAI, AWS…) and a revenue source (Stripe, Chargebee…), or run `uvr demo` to explore with sample data.</p>
            <Button variant="primary" onClick={() => setAdding(true)}>
              Add a service
            </Button>
          </Empty>
        ) : (
          <table className="w-full text-sm" data-testid="services">
            <thead className="bg-slate-50 text-xs text-slate-500 dark:bg-slate-900 dark:text-slate-400">
              <tr>
                <th className="px-3 py-2 text-left font-medium">Name</th>
                <th className="px-3 py-2 text-left font-medium">Type</th>
                <th className="px-3 py-2 text-left font-medium">Status</th>
                <th className="px-3 py-2 text-left font-medium">Last sync</th>
                <th className="px-3 py-2 text-right font-medium">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.services.map((s) => (
                <tr key={s.id} data-testid="service-row" className="border-t border-slate-100 dark:border-slate-800">
                  <td className="px-3 py-2 font-medium">{s.service_name}</td>
                  <td className="px-3 py-2">
                    {s.service_type} <Badge tone={s.service_category === 'usage' ? 'blue' : 'green'}>{s.service_category}</Badge>
                  </td>
                  <td className="px-3 py-2">
                    <Badge tone={s.status === 'active' ? 'green' : s.status === 'error' ? 'red' : 'slate'}>{s.status}</Badge>
                  </td>
                  <td className="px-3 py-2 text-slate-500">{f.dateTime(s.last_sync)}</td>
                  <td className="px-3 py-2 text-right">
                    <span className="inline-flex gap-2">
                      <Button onClick={() => sync.mutate(s)} disabled={sync.isPending}>
                        Sync now
                      </Button>
                      <Button variant="ghost" className="text-rose-600" onClick={() => setDeleting(s)}>
                        Delete
                      </Button>
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <AddService open={adding} onClose={() => setAdding(false)} />
      <Dialog open={deleting != null} onClose={() => setDeleting(null)} title="Delete service">
        {deleting && (
          <div className="flex flex-col gap-4 text-sm">
            <p>
              Delete <strong>{deleting.service_name}</strong> ({deleting.service_type}) and its stored credentials? Data already imported stays.
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

function AddService({ open, onClose }: { open: boolean; onClose: () => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const [category, setCategory] = useState<Category>('usage');
  const [typeName, setTypeName] = useState('');
  const [name, setName] = useState('');
  const [creds, setCreds] = useState<Record<string, string>>({});
  const [tested, setTested] = useState<{ ok: boolean; message: string } | null>(null);
  // The types and their fields are the API's catalog: what it validates against.
  const types = useQuery({ queryKey: ['service-types'], queryFn: () => get<{ service_types: ServiceType[] }>('/api/service-types'), enabled: open, staleTime: Infinity });
  const type = types.data?.service_types.find((t) => t.name === typeName);

  const reset = () => {
    setTypeName('');
    setName('');
    setCreds({});
    setTested(null);
  };
  const close = () => {
    reset(); // credentials never outlive the dialog
    onClose();
  };
  const filled = () => Object.fromEntries(Object.entries(creds).filter(([, v]) => v.trim() !== ''));

  const test = useMutation({
    mutationFn: () => post<{ success: boolean; message: string }>('/api/test-service', { service_type: typeName, credentials: filled() }),
    onSuccess: (r) => setTested({ ok: r.success, message: r.message }),
    onError: (e) => setTested({ ok: false, message: e.message }),
  });
  const add = useMutation({
    mutationFn: () => post<{ message: string }>('/api/services', { service_type: typeName, service_category: category, service_name: name || typeLabel(typeName), credentials: filled() }),
    onSuccess: (r) => {
      toast('success', r.message || 'Service added');
      void qc.invalidateQueries({ queryKey: ['services'] });
      close();
    },
    onError: (e) => toast('error', e.message),
  });

  return (
    <Dialog open={open} onClose={close} title="Add a service">
      <form
        className="flex flex-col gap-4"
        autoComplete="off"
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <fieldset className="flex flex-col gap-2">
          <legend className="mb-1 text-sm font-medium">1. Category</legend>
          <div className="flex gap-2">
            {(['usage', 'revenue'] as Category[]).map((c) => (
              <label key={c} className={cx('flex-1 cursor-pointer rounded-lg border px-3 py-2 text-sm', category === c ? 'border-indigo-500 bg-indigo-50 dark:bg-indigo-950' : 'border-slate-300 dark:border-slate-700')}>
                <input
                  type="radio"
                  name="category"
                  value={c}
                  className="mr-2"
                  checked={category === c}
                  onChange={() => {
                    setCategory(c);
                    reset();
                  }}
                />
                <span className="font-medium capitalize">{c}</span>
                <span className="block text-xs text-slate-500">{c === 'usage' ? 'what running the product costs' : 'what customers pay'}</span>
              </label>
            ))}
          </div>
        </fieldset>
        <label className="flex flex-col gap-1 text-sm font-medium">
          2. Type
          <select
            className={inputClass}
            name="service_type"
            required
            value={typeName}
            onChange={(e) => {
              setTypeName(e.target.value);
              setCreds({});
              setTested(null);
            }}
          >
            <option value="">{types.isPending ? 'Loading…' : 'Choose…'}</option>
            {types.data?.service_types
              .filter((t) => t.category === category)
              .map((t) => (
                <option key={t.name} value={t.name}>
                  {typeLabel(t.name)}
                </option>
              ))}
          </select>
        </label>
        {types.error && <ErrorNote error={types.error} what="the service types" />}
        {type && (
          <>
            <label className="flex flex-col gap-1 text-sm font-medium">
              Name
              <input className={inputClass} name="service_name" placeholder={typeLabel(type.name)} value={name} onChange={(e) => setName(e.target.value)} />
            </label>
            <fieldset className="flex flex-col gap-3">
              <legend className="mb-1 text-sm font-medium">3. Credentials</legend>
              {type.required.map((fl) => (
                <Field key={fl} field={fl} help={type.help?.[fl]} required value={creds[fl] ?? ''} onChange={(v) => setCreds((c) => ({ ...c, [fl]: v }))} />
              ))}
              {type.optional.length > 0 && (
                <details className="rounded-lg border border-slate-200 p-3 dark:border-slate-700" open={type.name.startsWith('custom')}>
                  <summary className="cursor-pointer text-sm text-slate-600 dark:text-slate-300">Optional settings</summary>
                  <div className="mt-3 flex flex-col gap-3">
                    {type.optional.map((fl) => (
                      <Field key={fl} field={fl} help={type.help?.[fl]} value={creds[fl] ?? ''} onChange={(v) => setCreds((c) => ({ ...c, [fl]: v }))} />
                    ))}
                  </div>
                </details>
              )}
            </fieldset>
            {tested && (
              <p role={tested.ok ? 'status' : 'alert'} data-testid="test-result" className={cx('rounded-md px-3 py-2 text-sm', tested.ok ? 'bg-emerald-50 text-emerald-800 dark:bg-emerald-950 dark:text-emerald-300' : 'bg-rose-50 text-rose-700 dark:bg-rose-950 dark:text-rose-300')}>
                {tested.message}
              </p>
            )}
            <div className="flex justify-end gap-2">
              <Button onClick={() => test.mutate()} disabled={test.isPending}>
                {test.isPending ? 'Testing…' : '4. Test'}
              </Button>
              <Button type="submit" variant="primary" disabled={add.isPending}>
                {add.isPending ? 'Adding…' : 'Add'}
              </Button>
            </div>
          </>
        )}
      </form>
    </Dialog>
  );
}

/** Field is one credential input; help (GET /api/service-types) says what uvr does with it. */
function Field({ field, help, value, onChange, required }: { field: string; help?: string; value: string; onChange: (v: string) => void; required?: boolean }) {
  const id = `cred-${field}`;
  const described = help ? `${id}-help` : undefined;
  return (
    <div className="flex flex-col gap-1 text-sm">
      <label htmlFor={id} className="flex flex-col gap-1">
        <span>
          {fieldLabel(field)}
          {required && <span className="text-rose-600"> *</span>}
        </span>
        {multiline(field) ? (
          <textarea id={id} name={field} rows={5} aria-describedby={described} className={cx(inputClass, 'font-mono text-xs')} value={value} onChange={(e) => onChange(e.target.value)} spellCheck={false} />
        ) : (
          <input id={id} name={field} type={secret(field) ? 'password' : 'text'} aria-describedby={described} autoComplete={secret(field) ? 'new-password' : 'off'} required={required} className={inputClass} value={value} onChange={(e) => onChange(e.target.value)} spellCheck={false} />
        )}
      </label>
      {help && (
        <p id={described} className="text-xs text-slate-500 dark:text-slate-400">
          {help}
        </p>
      )}
    </div>
  );
}
