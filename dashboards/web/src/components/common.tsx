import { ApiError, unavailable } from '../lib/api';
import type { Dec } from '../lib/dec';

/** ErrorNote shows a failed query with the API's own message. */
export function ErrorNote({ error, what }: { error: Error; what: string }) {
  const na = unavailable(error);
  return (
    <div role={na ? 'status' : 'alert'} className={na ? 'rounded-lg bg-slate-100 px-4 py-3 text-sm text-slate-600 dark:bg-slate-800 dark:text-slate-300' : 'rounded-lg bg-rose-50 px-4 py-3 text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300'}>
      {na ? `${what[0].toUpperCase()}${what.slice(1)}: not available on this server (${error.message}).` : `Could not load ${what}: ${error.message}`}
      {error instanceof ApiError && error.status === 0 && ' Is uvr running?'}
    </div>
  );
}

/**
 * readMRR picks the MRR at the end of the last month of GET /api/mrr's
 * months, and the month before's for the change. Nothing is computed.
 */
export function readMRR(body: { months?: { month: string; mrr: Dec }[] }): { mrr: Dec; previous: Dec | null; month: string } | null {
  const m = body.months ?? [];
  if (m.length === 0) return null;
  return { mrr: m[m.length - 1].mrr, previous: m.length > 1 ? m[m.length - 2].mrr : null, month: m[m.length - 1].month };
}
