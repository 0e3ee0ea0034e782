import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, get, post, unavailable, type AirbyteConnection, type Health, type Service, type SyncRun } from '../lib/api';
import { parseLag } from '../lib/prom';
import * as f from '../lib/format';
import { Badge, Button, Card, Empty, Skeleton, useToast } from '../components/ui';
import { ErrorNote } from '../components/common';

function duration(start: string, end: string | null): string {
  if (!end) return 'running';
  const s = (new Date(end).getTime() - new Date(start).getTime()) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function Pipelines() {
  const qc = useQueryClient();
  const toast = useToast();
  const health = useQuery({ queryKey: ['health'], queryFn: () => get<Health>('/api/health'), refetchInterval: 15_000 });
  const runs = useQuery({ queryKey: ['sync-runs'], queryFn: () => get<{ sync_runs: SyncRun[] }>('/api/sync-runs'), refetchInterval: 15_000 });
  const services = useQuery({ queryKey: ['services'], queryFn: () => get<{ services: Service[] }>('/api/services') });
  const conns = useQuery({ queryKey: ['airbyte', 'connections'], queryFn: () => get<{ connections: AirbyteConnection[] }>('/api/airbyte/connections') });
  const syncConn = useMutation({
    mutationFn: (c: AirbyteConnection) => post<{ message?: string }>(`/api/airbyte/sync/${encodeURIComponent(c.id)}`),
    onSuccess: (r) => toast('success', r.message ?? 'Sync started'),
    onError: (e) => toast('error', e.message),
  });
  const syncAll = useMutation({
    mutationFn: () => post<{ status: string; connections_synced: string; connections_failed: string }>('/api/sync'),
    onSuccess: (r) => {
      toast('success', `Sync ${r.status}: ${r.connections_synced} synced, ${r.connections_failed} failed`);
      void qc.invalidateQueries({ queryKey: ['sync-runs'] });
    },
    onError: (e) => toast('error', e.message),
  });
  const lag = useQuery({
    queryKey: ['metrics', 'lag'],
    queryFn: async () => {
      const res = await fetch('/metrics');
      if (!res.ok) throw new ApiError(res.status, `GET /metrics: HTTP ${res.status}`);
      return parseLag(await res.text());
    },
    refetchInterval: 10_000,
  });
  const names = new Map((services.data?.services ?? []).map((s) => [s.id, s.service_name]));
  const h = health.data ?? (health.error ? null : undefined);

  return (
    <div className="flex flex-col gap-6">
      <div className="flex items-center gap-3">
        <h1 className="mr-auto text-xl font-semibold">Pipelines</h1>
        <Button variant="primary" onClick={() => syncAll.mutate()} disabled={syncAll.isPending}>
          {syncAll.isPending ? 'Syncing…' : 'Sync all services'}
        </Button>
      </div>

      <section className="grid gap-4 md:grid-cols-3">
        <Card>
          <h2 className="mb-2 text-sm font-semibold">Health</h2>
          {health.isPending ? (
            <Skeleton className="h-16" />
          ) : h ? (
            <div className="flex flex-col gap-1 text-sm" data-testid="health">
              <p>
                <Badge tone={h.status === 'ok' ? 'green' : 'red'}>{h.status}</Badge> <span className="text-slate-500">version {h.version}</span>
              </p>
              {Object.entries(h.checks ?? {}).map(([k, v]) => (
                <p key={k} className="flex justify-between">
                  <span>{k}</span>
                  <Badge tone={v === 'ok' ? 'green' : 'red'}>{v}</Badge>
                </p>
              ))}
              {h.detail && <p className="text-rose-600">{h.detail}</p>}
            </div>
          ) : (
            <ErrorNote error={health.error!} what="health" />
          )}
        </Card>
        <Card className="md:col-span-2">
          <h2 className="mb-2 text-sm font-semibold">Projector lag</h2>
          {lag.error ? (
            <ErrorNote error={lag.error} what="the projector lag (/metrics)" />
          ) : !lag.data ? (
            <Skeleton className="h-16" />
          ) : lag.data.groups.length === 0 ? (
            <p className="text-sm text-slate-500">This server reports no consumer lag (uvr_kafka_consumer_lag_messages on /metrics).</p>
          ) : (
            <table className="w-full text-sm" data-testid="lag">
              <thead className="text-xs text-slate-500">
                <tr>
                  <th className="py-1 text-left font-medium">Consumer group</th>
                  <th className="py-1 text-left font-medium">Topic</th>
                  <th className="py-1 text-right font-medium">Messages behind</th>
                </tr>
              </thead>
              <tbody>
                {lag.data.groups.map((g) => (
                  <tr key={g.group + g.topic} className="border-t border-slate-100 dark:border-slate-800">
                    <td className="py-1">{g.group}</td>
                    <td className="py-1 text-slate-500">{g.topic}</td>
                    <td className="py-1 text-right tabular-nums">
                      <Badge tone={g.lag === 0 ? 'green' : 'amber'}>{f.quantity(g.lag)}</Badge>
                    </td>
                  </tr>
                ))}
                {lag.data.dirtyDays != null && (
                  <tr className="border-t border-slate-100 dark:border-slate-800">
                    <td className="py-1" colSpan={2}>
                      Days waiting for their daily aggregate
                    </td>
                    <td className="py-1 text-right tabular-nums">{f.quantity(lag.data.dirtyDays)}</td>
                  </tr>
                )}
              </tbody>
            </table>
          )}
        </Card>
      </section>

      <Card flush>
        <h2 className="border-b border-slate-200 p-4 font-semibold dark:border-slate-800">Airbyte connections</h2>
        {conns.error ? (
          unavailable(conns.error) ? (
            <Empty title="Airbyte platform not configured">
              <p>Start uvr with --airbyte-url and --airbyte-token to list its connections here.</p>
            </Empty>
          ) : (
            <div className="p-4">
              <ErrorNote error={conns.error} what="the Airbyte connections" />
            </div>
          )
        ) : conns.isPending ? (
          <Skeleton className="m-4 h-16" />
        ) : conns.data.connections.length === 0 ? (
          <Empty title="No Airbyte connections" />
        ) : (
          <table className="w-full text-sm">
            <thead className="bg-slate-50 text-xs text-slate-500 dark:bg-slate-900">
              <tr>
                <th className="px-3 py-2 text-left font-medium">Connection</th>
                <th className="px-3 py-2 text-left font-medium">Status</th>
                <th className="px-3 py-2 text-right font-medium" />
              </tr>
            </thead>
            <tbody>
              {conns.data.connections.map((c) => (
                <tr key={c.id} className="border-t border-slate-100 dark:border-slate-800">
                  <td className="px-3 py-2">{c.name || c.id}</td>
                  <td className="px-3 py-2">
                    <Badge tone={c.status === 'active' ? 'green' : 'slate'}>{c.status}</Badge>
                  </td>
                  <td className="px-3 py-2 text-right">
                    <Button onClick={() => syncConn.mutate(c)} disabled={syncConn.isPending}>
                      Sync now
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>

      <Card flush>
        <h2 className="border-b border-slate-200 p-4 font-semibold dark:border-slate-800">Recent sync runs</h2>
        {runs.error ? (
          <div className="p-4">
            <ErrorNote error={runs.error} what="the sync runs" />
          </div>
        ) : runs.isPending ? (
          <Skeleton className="m-4 h-24" />
        ) : runs.data.sync_runs.length === 0 ? (
          <Empty title="No sync has run yet">
            <p>Add a service, then “Sync now”.</p>
          </Empty>
        ) : (
          <div className="max-h-[28rem] overflow-auto">
            <table className="w-full text-sm" data-testid="sync-runs">
              <thead className="sticky top-0 bg-slate-50 text-xs text-slate-500 dark:bg-slate-900">
                <tr>
                  <th className="px-3 py-2 text-left font-medium">Service</th>
                  <th className="px-3 py-2 text-left font-medium">Started</th>
                  <th className="px-3 py-2 text-left font-medium">Status</th>
                  <th className="px-3 py-2 text-right font-medium">Records</th>
                  <th className="px-3 py-2 text-right font-medium">Events</th>
                  <th className="px-3 py-2 text-right font-medium">Duration</th>
                  <th className="px-3 py-2 text-left font-medium">Error</th>
                </tr>
              </thead>
              <tbody>
                {runs.data.sync_runs.map((r) => (
                  <tr key={r.id} className="border-t border-slate-100 dark:border-slate-800">
                    <td className="px-3 py-2">
                      {names.get(r.service_id) ?? r.service_id} <span className="text-xs text-slate-500">{r.service_type}</span>
                    </td>
                    <td className="px-3 py-2 text-slate-500">{f.dateTime(r.started_at)}</td>
                    <td className="px-3 py-2">
                      <Badge tone={r.status === 'succeeded' || r.status === 'success' ? 'green' : r.status === 'failed' ? 'red' : 'slate'}>{r.status}</Badge>
                    </td>
                    <td className="px-3 py-2 text-right tabular-nums">{f.quantity(r.records_read)}</td>
                    <td className="px-3 py-2 text-right tabular-nums">{f.quantity(r.events_emitted)}</td>
                    <td className="px-3 py-2 text-right tabular-nums">{duration(r.started_at, r.finished_at)}</td>
                    <td className="max-w-xs truncate px-3 py-2 text-rose-600" title={r.error ?? ''}>
                      {r.error}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}
