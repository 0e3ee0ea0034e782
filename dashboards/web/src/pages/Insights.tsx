import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post, qs, type Insight, type InsightStatus, type Severity } from '../lib/api';
import * as f from '../lib/format';
import { setParams, navigate } from '../lib/router';
import { Badge, Button, Card, cx, Empty, inputClass, Skeleton, useToast } from '../components/ui';
import { ErrorNote } from '../components/common';

const KINDS = ['unprofitable_customer', 'unprofitable_feature', 'margin_erosion', 'usage_anomaly', 'upsell_opportunity', 'churn_risk'];

const severityTone = { critical: 'red', warning: 'amber', info: 'blue' } as const;

function label(s: string): string {
  return s.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/** Money-like evidence keys are shown as amounts; the rest as numbers. */
function evidenceValue(k: string, v: string): string {
  if (/percent|points/.test(k)) return f.percent(v);
  if (/^-?\d+(\.\d+)?$/.test(v)) return f.quantity(v);
  return v;
}

export function InsightCard({ insight: i, compact }: { insight: Insight; compact?: boolean }) {
  const qc = useQueryClient();
  const toast = useToast();
  const act = useMutation({
    mutationFn: (action: 'acknowledge' | 'resolve') => post<{ insight: Insight }>(`/api/insights/${encodeURIComponent(i.id)}/${action}`),
    onSuccess: (_r, action) => {
      toast('success', `${action === 'acknowledge' ? 'Acknowledged' : 'Resolved'}: ${i.title}`);
      void qc.invalidateQueries({ queryKey: ['insights'] });
    },
    onError: (e) => toast('error', e.message),
  });
  return (
    <Card data-testid="insight" data-insight-id={i.id} data-status={i.status} className={cx('flex flex-col gap-2', compact && 'p-3')}>
      <div className="flex flex-wrap items-center gap-2">
        <Badge tone={severityTone[i.type] ?? 'slate'}>{i.type}</Badge>
        <Badge>{label(i.category)}</Badge>
        <Badge tone={i.status === 'open' ? 'amber' : i.status === 'resolved' ? 'green' : 'slate'}>{i.status}</Badge>
        <h3 className="font-medium">{i.title}</h3>
        {i.metric?.name && (
          <span className="ml-auto text-sm font-semibold tabular-nums" title={i.metric.name}>
            {label(i.metric.name)}: {evidenceValue(i.metric.name, i.metric.value)}
          </span>
        )}
      </div>
      <p className="text-sm text-slate-600 dark:text-slate-300">{i.description}</p>
      {!compact && Object.keys(i.evidence).length > 0 && (
        <dl className="grid grid-cols-2 gap-x-6 gap-y-1 text-xs sm:grid-cols-4">
          {Object.entries(i.evidence).map(([k, v]) => (
            <div key={k} className="flex justify-between gap-2 border-b border-dashed border-slate-200 dark:border-slate-700">
              <dt className="text-slate-500">{label(k)}</dt>
              <dd className="tabular-nums">{evidenceValue(k, v)}</dd>
            </div>
          ))}
        </dl>
      )}
      <div className="flex flex-wrap items-center gap-2 text-xs text-slate-500">
        {i.customer && (
          <button
            className="text-indigo-700 hover:underline dark:text-indigo-300"
            onClick={() => {
              navigate('/');
              setParams({ customer: i.customer!.id, feature: null });
            }}
          >
            {i.customer.name}
          </button>
        )}
        {i.feature && <span>feature {i.feature}</span>}
        <span>first seen {f.dateTime(i.first_seen)}</span>
        <span>last seen {f.dateTime(i.last_seen)}</span>
        <span className="ml-auto flex gap-2">
          {i.status === 'open' && (
            <Button onClick={() => act.mutate('acknowledge')} disabled={act.isPending}>
              Acknowledge
            </Button>
          )}
          {i.status !== 'resolved' && (
            <Button onClick={() => act.mutate('resolve')} disabled={act.isPending}>
              Resolve
            </Button>
          )}
        </span>
      </div>
    </Card>
  );
}

export function Insights() {
  const qc = useQueryClient();
  const toast = useToast();
  const [status, setStatus] = useState<InsightStatus | ''>('open');
  const [severity, setSeverity] = useState<Severity | ''>('');
  const [kind, setKind] = useState('');
  const filter = { status, severity, kind };
  const list = useQuery({ queryKey: ['insights', filter], queryFn: () => get<{ insights: Insight[] }>('/api/insights' + qs(filter)) });
  const run = useMutation({
    mutationFn: () => post<Record<string, unknown>>('/api/insights/run'),
    onSuccess: () => {
      toast('success', 'Insight rules evaluated');
      void qc.invalidateQueries({ queryKey: ['insights'] });
    },
    onError: (e) => toast('error', e.message),
  });
  return (
    <div className="flex flex-col gap-4">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="mr-auto text-xl font-semibold">Insights</h1>
        <select aria-label="Status" className={cx(inputClass, 'w-auto')} value={status} onChange={(e) => setStatus(e.target.value as InsightStatus | '')}>
          <option value="">Any status</option>
          <option value="open">Open</option>
          <option value="acknowledged">Acknowledged</option>
          <option value="resolved">Resolved</option>
        </select>
        <select aria-label="Severity" className={cx(inputClass, 'w-auto')} value={severity} onChange={(e) => setSeverity(e.target.value as Severity | '')}>
          <option value="">Any severity</option>
          <option value="critical">Critical</option>
          <option value="warning">Warning</option>
          <option value="info">Info</option>
        </select>
        <select aria-label="Kind" className={cx(inputClass, 'w-auto')} value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="">Any kind</option>
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {label(k)}
            </option>
          ))}
        </select>
        <Button variant="primary" onClick={() => run.mutate()} disabled={run.isPending}>
          {run.isPending ? 'Running…' : 'Run rules now'}
        </Button>
      </div>
      {list.error ? (
        <ErrorNote error={list.error} what="the insights" />
      ) : list.isPending ? (
        Array.from({ length: 4 }, (_, i) => <Skeleton key={i} className="h-28" />)
      ) : list.data.insights.length === 0 ? (
        <Card>
          <Empty title="No insights match">
            <p>Insights appear once there is usage and revenue: add a service or run `uvr demo`, then “Run rules now”.</p>
          </Empty>
        </Card>
      ) : (
        <div className="flex flex-col gap-3">
          {list.data.insights.map((i) => (
            <InsightCard key={i.id} insight={i} />
          ))}
        </div>
      )}
    </div>
  );
}
