import { useMemo, useState } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis, Bar } from 'recharts';
import { defined, get, post, qs, unavailable, type CustomerDetail, type FeatureRow, type Insight, type Series } from '../lib/api';
import { rangeParams, useFilters } from '../lib/filters';
import { chartRows } from '../lib/metrics';
import * as f from '../lib/format';
import type { Dec } from '../lib/dec';
import { Badge, Button, cx, Dialog, Empty, inputClass, Skeleton } from '../components/ui';
import { ErrorNote } from '../components/common';
import { InsightCard } from './Insights';

/** Drilldown is the panel of one customer or one feature, opened from the breakdown. */
export function Drilldown({ kind, id, onClose }: { kind: 'customer' | 'feature'; id: string; onClose: () => void }) {
  return (
    <Dialog open onClose={onClose} title={kind === 'customer' ? 'Customer' : 'Feature'} wide>
      <div data-testid="drilldown">{kind === 'customer' ? <CustomerPanel id={id} /> : <FeaturePanel feature={id} />}</div>
    </Dialog>
  );
}

function Stat({ label, value, neg }: { label: string; value: string; neg?: boolean }) {
  return (
    <div>
      <p className="text-xs text-slate-500 uppercase dark:text-slate-400">{label}</p>
      <p className={cx('text-lg font-semibold tabular-nums', neg && 'text-rose-600 dark:text-rose-400')}>{value}</p>
    </div>
  );
}

function DailyChart({ rows, cur }: { rows: ReturnType<typeof chartRows>; cur: string }) {
  return (
    <div className="h-56" data-testid="drilldown-chart">
      <ResponsiveContainer width="100%" height="100%">
        <ComposedChart data={rows} margin={{ top: 5, right: 5, bottom: 0, left: 5 }}>
          <CartesianGrid strokeDasharray="3 3" stroke="currentColor" strokeOpacity={0.1} />
          <XAxis dataKey="date" tickFormatter={(d: string) => f.day(d)} tick={{ fontSize: 11 }} minTickGap={24} />
          <YAxis yAxisId="money" tickFormatter={(v: number) => f.compactMoney(v, cur)} tick={{ fontSize: 11 }} width={60} />
          <YAxis yAxisId="usage" orientation="right" tickFormatter={(v: number) => f.compactQuantity(v)} tick={{ fontSize: 11 }} width={50} />
          <Tooltip
            contentStyle={{ fontSize: 12 }}
            labelFormatter={(d) => f.day(String(d))}
            formatter={(_v, name, item) => {
              const r = item.payload as (typeof rows)[number];
              if (name === 'Usage') return [f.quantity(r.usage), name];
              return [f.money(name === 'Revenue' ? r.revenue : r.cost, cur), name];
            }}
          />
          <Legend wrapperStyle={{ fontSize: 12 }} />
          <Bar yAxisId="usage" dataKey="nUsage" name="Usage" fill="#94a3b8" fillOpacity={0.4} isAnimationActive={false} />
          <Line yAxisId="money" dataKey="nRevenue" name="Revenue" stroke="#4f46e5" strokeWidth={2} dot={false} isAnimationActive={false} />
          <Line yAxisId="money" dataKey="nCost" name="Cost" stroke="#e11d48" strokeWidth={2} dot={false} isAnimationActive={false} />
        </ComposedChart>
      </ResponsiveContainer>
    </div>
  );
}

function useInsights() {
  return useQuery({ queryKey: ['insights', 'all'], queryFn: () => get<{ insights: Insight[] }>('/api/insights') });
}

function CustomerPanel({ id }: { id: string }) {
  const { filters } = useFilters();
  const p = rangeParams(filters);
  const cur = filters.currency;
  const detail = useQuery({ queryKey: ['customer', id, p], queryFn: () => get<CustomerDetail>(`/api/customers/${encodeURIComponent(id)}` + qs(p)) });
  const insights = useInsights();
  const rows = useMemo(() => {
    if (!detail.data) return [];
    // The daily series has one row per day and feature (revenue under
    // "(unattributed)"): chartRows adds a day's rows exactly.
    const ds = detail.data.daily_series;
    return chartRows(
      filters.range,
      ds.map((r) => ({ date: r.period, usage_cost: r.cost, revenue: r.revenue })),
      ds.map((r) => ({ period: r.period, usage: r.usage })),
    );
  }, [detail.data, filters.range]);

  if (detail.error) return <ErrorNote error={detail.error} what="this customer" />;
  if (!detail.data) return <PanelSkeleton />;
  const d = detail.data;
  const c = d.customer;
  const mine = (insights.data?.insights ?? []).filter((i) => i.customer?.id === c.id && i.status !== 'resolved');
  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-wrap items-baseline gap-3">
        <h3 className="text-xl font-semibold" data-testid="drilldown-title">
          {c.name || c.id}
        </h3>
        {c.plan && <Badge tone="blue">{c.plan}</Badge>}
        <span className="text-xs text-slate-500">{c.id}</span>
      </div>
      <div className="grid grid-cols-2 gap-4 sm:grid-cols-5">
        <Stat label="Revenue" value={f.money(c.revenue, cur)} />
        <Stat label="Cost" value={f.money(c.cost, cur)} />
        <Stat label="Profit" value={f.money(c.profit, cur)} neg={f.tone(c.profit) === 'neg'} />
        <Stat label="Margin" value={f.percent(defined(c.margin_percentage, c.margin_defined))} />
        <Stat label="Usage" value={f.quantity(c.usage)} />
      </div>
      <DailyChart rows={rows} cur={cur} />
      <div className="grid gap-5 md:grid-cols-2">
        <section>
          <h4 className="mb-2 text-sm font-semibold">Features used</h4>
          <FeatureTable rows={d.features} cur={cur} />
        </section>
        <section>
          <h4 className="mb-2 text-sm font-semibold">Revenue items</h4>
          {d.revenue_items.length === 0 ? (
            <p className="text-sm text-slate-500">No invoices, charges or refunds in this range.</p>
          ) : (
            <div className="max-h-56 overflow-auto">
              <table className="w-full text-sm">
                <thead className="text-xs text-slate-500">
                  <tr>
                    <th className="py-1 text-left font-medium">Date</th>
                    <th className="py-1 text-left font-medium">Kind</th>
                    <th className="py-1 text-left font-medium">Source</th>
                    <th className="py-1 text-right font-medium">Amount</th>
                  </tr>
                </thead>
                <tbody>
                  {d.revenue_items.map((r) => (
                    <tr key={r.source + r.id + r.date} className="border-t border-slate-100 dark:border-slate-800">
                      <td className="py-1">{f.day(r.date)}</td>
                      <td className="py-1">
                        <Badge tone={f.tone(r.amount) === 'neg' ? 'red' : 'slate'}>{r.kind}</Badge>
                      </td>
                      <td className="py-1 text-xs text-slate-500" title={r.id}>
                        {r.source}
                      </td>
                      <td className="py-1 text-right tabular-nums">{f.money(r.amount, r.currency || cur)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      </div>
      <section>
        <h4 className="mb-2 text-sm font-semibold">Linked references</h4>
        {d.references.length === 0 ? (
          <p className="text-sm text-slate-500">No source references are linked to this customer.</p>
        ) : (
          <ul className="flex flex-wrap gap-2">
            {d.references.map((r) => (
              <li key={r.source + r.external_id} className="rounded-md border border-slate-200 px-2 py-1 text-xs dark:border-slate-700">
                <span className="text-slate-500">{r.source}</span> <code>{r.external_id}</code>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section>
        <h4 className="mb-2 text-sm font-semibold">Insights</h4>
        {insights.isPending ? <Skeleton className="h-12" /> : mine.length === 0 ? <p className="text-sm text-slate-500">No open insights for this customer.</p> : <div className="flex flex-col gap-2">{mine.map((i) => <InsightCard key={i.id} insight={i} compact />)}</div>}
      </section>
      <WhatIf customerId={c.id} />
    </div>
  );
}

function FeatureTable({ rows, cur }: { rows: FeatureRow[]; cur: string }) {
  if (rows.length === 0) return <p className="text-sm text-slate-500">No usage in this range.</p>;
  return (
    <table className="w-full text-sm">
      <thead className="text-xs text-slate-500">
        <tr>
          <th className="py-1 text-left font-medium">Feature</th>
          <th className="py-1 pl-3 text-right font-medium">Usage</th>
          <th className="py-1 pl-3 text-right font-medium">Cost</th>
          <th className="py-1 pl-3 text-right font-medium">Revenue</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.feature} className="border-t border-slate-100 dark:border-slate-800">
            <td className="py-1 [overflow-wrap:anywhere]">{r.feature}</td>
            <td className="py-1 pl-3 text-right tabular-nums">{f.quantity(r.usage)}</td>
            <td className="py-1 pl-3 text-right tabular-nums">{f.money(r.cost, cur)}</td>
            <td className="py-1 pl-3 text-right tabular-nums">{f.money(r.revenue, cur)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function FeaturePanel({ feature }: { feature: string }) {
  const { filters } = useFilters();
  const p = rangeParams(filters);
  const cur = filters.currency;
  const features = useQuery({ queryKey: ['features', p], queryFn: () => get<{ features: FeatureRow[] }>('/api/features' + qs(p)) });
  const series = useQuery({ queryKey: ['timeseries', 'feature', p], queryFn: () => get<Series>('/api/timeseries' + qs({ ...p, group_by: 'day', by: 'feature' })) });
  const insights = useInsights();
  const rows = useMemo(() => {
    const mine = (series.data?.series ?? []).filter((r) => r.key === feature);
    return chartRows(
      filters.range,
      mine.map((r) => ({ date: r.period, usage_cost: r.cost, revenue: r.revenue })),
      mine,
    );
  }, [series.data, feature, filters.range]);
  if (features.error) return <ErrorNote error={features.error} what="this feature" />;
  if (!features.data || !series.data) return <PanelSkeleton />;
  const row = features.data.features.find((x) => x.feature === feature);
  const mine = (insights.data?.insights ?? []).filter((i) => i.feature === feature && i.status !== 'resolved');
  return (
    <div className="flex flex-col gap-5">
      <h3 className="text-xl font-semibold" data-testid="drilldown-title">
        {feature}
      </h3>
      {row ? (
        <div className="grid grid-cols-2 gap-4 sm:grid-cols-5">
          <Stat label="Revenue" value={f.money(row.revenue, cur)} />
          <Stat label="Cost" value={f.money(row.cost, cur)} />
          <Stat label="Profit" value={f.money(row.profit, cur)} neg={f.tone(row.profit) === 'neg'} />
          <Stat label="Margin" value={f.percent(defined(row.margin_percentage, row.margin_defined))} />
          <Stat label="Usage" value={f.quantity(row.usage)} />
        </div>
      ) : (
        <Empty title="No usage of this feature in the range" />
      )}
      <DailyChart rows={rows} cur={cur} />
      <section>
        <h4 className="mb-2 text-sm font-semibold">Insights</h4>
        {mine.length === 0 ? <p className="text-sm text-slate-500">No open insights for this feature.</p> : <div className="flex flex-col gap-2">{mine.map((i) => <InsightCard key={i.id} insight={i} compact />)}</div>}
      </section>
    </div>
  );
}

function PanelSkeleton() {
  return (
    <div className="flex flex-col gap-4" aria-busy>
      <Skeleton className="h-7 w-64" />
      <div className="grid grid-cols-5 gap-4">
        {Array.from({ length: 5 }, (_, i) => (
          <Skeleton key={i} className="h-12" />
        ))}
      </div>
      <Skeleton className="h-56" />
    </div>
  );
}

interface SimTotals {
  revenue: Dec;
  cost: Dec;
  profit: Dec;
  margin_percentage: Dec | null;
}

interface Simulation {
  actual: SimTotals;
  simulated: SimTotals;
  delta: SimTotals;
  assumptions: string[];
}

/**
 * WhatIf posts a plan repricing to POST /api/simulate (plan: price per month,
 * included quantity per month, overage price per unit) and shows the actual
 * and simulated revenue, cost, profit and margin the API answers.
 */
function WhatIf({ customerId }: { customerId: string }) {
  const { filters } = useFilters();
  const [price, setPrice] = useState('');
  const [quota, setQuota] = useState('');
  const [overage, setOverage] = useState('');
  const sim = useMutation({
    mutationFn: () => {
      const plan: Record<string, string> = { price };
      if (quota) plan.included_quantity = quota;
      if (overage) plan.overage_price = overage;
      const { start_date, end_date, currency, basis } = rangeParams(filters);
      return post<Simulation>('/api/simulate', { customer_id: customerId, start_date, end_date, currency, basis, plan });
    },
  });
  const cur = filters.currency;
  const res = sim.data;
  const decimal = '[0-9]*[.]?[0-9]*';
  return (
    <section className="rounded-lg border border-slate-200 p-4 dark:border-slate-800">
      <h4 className="mb-3 text-sm font-semibold">What-if repricing</h4>
      <form
        className="grid grid-cols-1 gap-3 sm:grid-cols-4"
        onSubmit={(e) => {
          e.preventDefault();
          sim.mutate();
        }}
      >
        <label className="flex flex-col gap-1 text-xs font-medium">
          Plan price ({cur}/month)
          <input className={inputClass} name="plan_price" inputMode="decimal" pattern={decimal} required value={price} onChange={(e) => setPrice(e.target.value)} />
        </label>
        <label className="flex flex-col gap-1 text-xs font-medium">
          Included units / month
          <input className={inputClass} name="included_quantity" inputMode="decimal" pattern={decimal} value={quota} onChange={(e) => setQuota(e.target.value)} />
        </label>
        <label className="flex flex-col gap-1 text-xs font-medium">
          Overage ({cur}/unit)
          <input className={inputClass} name="overage_price" inputMode="decimal" pattern={decimal} value={overage} onChange={(e) => setOverage(e.target.value)} />
        </label>
        <div className="flex items-end">
          <Button type="submit" variant="primary" disabled={sim.isPending || !price}>
            {sim.isPending ? 'Simulating…' : 'Simulate'}
          </Button>
        </div>
      </form>
      {sim.error && (
        <p role={unavailable(sim.error) ? 'status' : 'alert'} className="mt-3 text-sm text-rose-600 dark:text-rose-400">
          {unavailable(sim.error) ? `What-if repricing is not available on this server (${sim.error.message}).` : sim.error.message}
        </p>
      )}
      {res && (
        <div className="mt-3" data-testid="simulation">
          <table className="w-full text-sm">
            <thead className="text-xs text-slate-500">
              <tr>
                <th className="text-left font-medium" />
                <th className="text-right font-medium">Actual</th>
                <th className="text-right font-medium">With this plan</th>
                <th className="text-right font-medium">Change</th>
              </tr>
            </thead>
            <tbody>
              {(['revenue', 'cost', 'profit'] as const).map((k) => (
                <tr key={k}>
                  <td className="capitalize">{k}</td>
                  <td className="text-right tabular-nums">{f.money(res.actual[k], cur)}</td>
                  <td className="text-right font-medium tabular-nums">{f.money(res.simulated[k], cur)}</td>
                  <td className={cx('text-right tabular-nums', f.tone(res.delta[k]) === 'neg' && 'text-rose-600')}>{f.money(res.delta[k], cur)}</td>
                </tr>
              ))}
              <tr>
                <td>Margin</td>
                <td className="text-right tabular-nums">{f.percent(res.actual.margin_percentage)}</td>
                <td className="text-right font-medium tabular-nums">{f.percent(res.simulated.margin_percentage)}</td>
                <td className="text-right tabular-nums">{res.delta.margin_percentage == null ? '—' : `${f.quantity(res.delta.margin_percentage)} pts`}</td>
              </tr>
            </tbody>
          </table>
          {res.assumptions.length > 0 && (
            <ul className="mt-2 list-disc pl-5 text-xs text-slate-500">
              {res.assumptions.map((a) => (
                <li key={a}>{a}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
