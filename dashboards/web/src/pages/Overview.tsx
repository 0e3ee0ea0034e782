import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Area, Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { defined, get, qs, unavailable, type CustomerList, type Dashboard, type FeatureRow, type Series } from '../lib/api';
import { CURRENCIES, rangeParams, useFilters, type Basis } from '../lib/filters';
import { activeCustomers, byPlan, chartRows, delta, marginPct, pointsDelta, sortRows, type Delta, type SortDir } from '../lib/metrics';
import { lastDays, previous, PRESETS, valid } from '../lib/range';
import * as f from '../lib/format';
import { setParams } from '../lib/router';
import { sign, toNumber } from '../lib/dec';
import { Badge, Button, Card, cx, Empty, inputClass, MarginBar, Skeleton, SortHeader, Tabs } from '../components/ui';
import { ErrorNote, readMRR } from '../components/common';
import { Drilldown } from './Drilldown';

export function Overview({ params }: { params: URLSearchParams }) {
  const { filters } = useFilters();
  const p = rangeParams(filters);
  const prev = rangeParams(filters, previous(filters.range));

  const dash = useQuery({ queryKey: ['dashboard', p], queryFn: () => get<Dashboard>('/api/dashboard' + qs(p)) });
  const prevDash = useQuery({ queryKey: ['dashboard', prev], queryFn: () => get<Dashboard>('/api/dashboard' + qs(prev)) });
  const customers = useQuery({ queryKey: ['customers', p], queryFn: () => get<CustomerList>('/api/customers' + qs({ ...p, limit: 1000 })) });
  const prevCustomers = useQuery({ queryKey: ['customers', prev], queryFn: () => get<CustomerList>('/api/customers' + qs({ ...prev, limit: 1000 })) });
  const features = useQuery({ queryKey: ['features', p], queryFn: () => get<{ features: FeatureRow[] }>('/api/features' + qs(p)) });
  const usage = useQuery({ queryKey: ['timeseries', 'feature', p], queryFn: () => get<Series>('/api/timeseries' + qs({ ...p, group_by: 'day', by: 'feature' })) });
  const mrr = useQuery({ queryKey: ['mrr', p], queryFn: () => get<{ months: { month: string; mrr: string }[] }>('/api/mrr' + qs(p)) });

  const drill = params.get('customer') ? { kind: 'customer' as const, id: params.get('customer')! } : params.get('feature') ? { kind: 'feature' as const, id: params.get('feature')! } : null;
  const cur = filters.currency;
  const s = dash.data?.summary;
  const ps = prevDash.data?.summary;
  const empty = s && dash.data!.time_series.length === 0 && customers.data?.customers.length === 0;
  const mrrNow = mrr.data !== undefined ? readMRR(mrr.data) : null;

  return (
    <div className="flex flex-col gap-6">
      <Toolbar />
      {dash.error && <ErrorNote error={dash.error} what="the dashboard" />}
      <section aria-label="Key figures" className="grid grid-cols-2 gap-4 md:grid-cols-3 xl:grid-cols-6">
        <Kpi id="revenue" label="Revenue" loading={dash.isPending} value={s && f.money(s.total_revenue, cur)} d={s && ps ? delta(s.total_revenue, ps.total_revenue) : undefined} />
        <Kpi id="cost" label="Usage cost" loading={dash.isPending} value={s && f.money(s.total_usage_cost, cur)} d={s && ps ? delta(s.total_usage_cost, ps.total_usage_cost) : undefined} invert />
        <Kpi id="profit" label="Profit" loading={dash.isPending} value={s && f.money(s.total_profit, cur)} d={s && ps ? delta(s.total_profit, ps.total_profit) : undefined} tone={s ? f.tone(s.total_profit) : undefined} />
        <Kpi
          id="margin"
          label="Margin"
          loading={dash.isPending}
          value={s && f.percent(defined(s.profit_margin_percentage, s.margin_defined))}
          points={s && ps ? pointsDelta(defined(s.profit_margin_percentage, s.margin_defined), defined(ps.profit_margin_percentage, ps.margin_defined)) : undefined}
        />
        <Kpi
          id="active-customers"
          label="Active customers"
          loading={customers.isPending}
          value={customers.data ? f.quantity(activeCustomers(customers.data.customers)) : customers.error ? 'not available' : undefined}
          d={customers.data && prevCustomers.data ? delta(activeCustomers(customers.data.customers), activeCustomers(prevCustomers.data.customers)) : undefined}
          hint="customers with usage or revenue in the range"
        />
        <Kpi
          id="mrr"
          label="MRR"
          loading={mrr.isPending}
          value={mrrNow ? f.money(mrrNow.mrr, cur) : mrr.error && unavailable(mrr.error) ? 'not available' : mrr.error ? 'error' : '—'}
          d={mrrNow && mrrNow.previous != null ? delta(mrrNow.mrr, mrrNow.previous) : undefined}
          deltaLabel="vs the month before"
          hint={mrr.error && unavailable(mrr.error) ? 'MRR is not available on this server' : `monthly recurring revenue at the end of ${mrrNow?.month ?? 'the range'}`}
        />
      </section>

      {empty ? (
        <Card>
          <Empty title="No usage or revenue in this range yet">
            <p>
              Add a service under <a className="text-indigo-600 underline" href="/services">Services</a> or run <code className="rounded bg-slate-100 px-1 dark:bg-slate-800">uvr demo</code> to load sample data.
            </p>
          </Empty>
        </Card>
      ) : (
        <UsageChart dash={dash.data} usage={usage.data} loading={dash.isPending} />
      )}

      <Breakdown customers={customers.data?.customers} features={features.data?.features} loading={customers.isPending || features.isPending} error={customers.error ?? features.error} />

      {drill && <Drilldown kind={drill.kind} id={drill.id} onClose={() => setParams({ customer: null, feature: null })} />}
    </div>
  );
}

function Toolbar() {
  const { filters, set } = useFilters();
  const [custom, setCustom] = useState(filters.preset == null);
  const [from, setFrom] = useState(filters.range.start);
  const [to, setTo] = useState(filters.range.end);
  const customValid = valid({ start: from, end: to });
  return (
    <div className="flex flex-wrap items-center gap-3">
      <h1 className="mr-auto text-xl font-semibold">Overview</h1>
      <div role="group" aria-label="Date range" className="flex items-center gap-1 rounded-lg bg-slate-100 p-1 dark:bg-slate-800">
        {PRESETS.map((n) => (
          <button
            key={n}
            aria-pressed={filters.preset === n && !custom}
            onClick={() => {
              setCustom(false);
              const r = lastDays(n);
              setFrom(r.start);
              setTo(r.end);
              set({ range: r, preset: n });
            }}
            className={cx('rounded-md px-2.5 py-1 text-sm', filters.preset === n && !custom ? 'bg-white shadow-sm dark:bg-slate-950' : 'text-slate-600 dark:text-slate-300')}
          >
            {n}d
          </button>
        ))}
        <button aria-pressed={custom} onClick={() => setCustom(true)} className={cx('rounded-md px-2.5 py-1 text-sm', custom ? 'bg-white shadow-sm dark:bg-slate-950' : 'text-slate-600 dark:text-slate-300')}>
          Custom
        </button>
      </div>
      {custom && (
        <form
          className="flex items-center gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            if (customValid) set({ range: { start: from, end: to }, preset: null });
          }}
        >
          <label className="sr-only" htmlFor="range-from">
            From
          </label>
          <input id="range-from" type="date" className={cx(inputClass, 'w-auto')} value={from} max={to} onChange={(e) => setFrom(e.target.value)} />
          <span aria-hidden>–</span>
          <label className="sr-only" htmlFor="range-to">
            To
          </label>
          <input id="range-to" type="date" className={cx(inputClass, 'w-auto')} value={to} min={from} onChange={(e) => setTo(e.target.value)} />
          <Button type="submit" disabled={!customValid}>
            Apply
          </Button>
        </form>
      )}
      <label className="flex items-center gap-2 text-sm">
        <span className="sr-only">Currency</span>
        <select aria-label="Currency" className={cx(inputClass, 'w-auto')} value={filters.currency} onChange={(e) => set({ currency: e.target.value })}>
          {CURRENCIES.map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
      </label>
      <div role="group" aria-label="Revenue basis" className="flex items-center gap-1 rounded-lg bg-slate-100 p-1 dark:bg-slate-800">
        {(['accrual', 'cash'] as Basis[]).map((b) => (
          <button
            key={b}
            aria-pressed={filters.basis === b}
            onClick={() => set({ basis: b })}
            className={cx('rounded-md px-2.5 py-1 text-sm capitalize', filters.basis === b ? 'bg-white shadow-sm dark:bg-slate-950' : 'text-slate-600 dark:text-slate-300')}
          >
            {b}
          </button>
        ))}
      </div>
    </div>
  );
}

function DeltaLine({ d, points, invert, label = 'vs previous period' }: { d?: Delta; points?: number | null; invert?: boolean; label?: string }) {
  if (points != null) {
    const good = points >= 0;
    return (
      <span className={cx('text-xs', good ? 'text-emerald-600 dark:text-emerald-400' : 'text-rose-600 dark:text-rose-400')}>
        {points >= 0 ? '▲' : '▼'} {f.quantity(Math.abs(points).toFixed(1))} pts vs previous period
      </span>
    );
  }
  if (!d || d.kind === 'none') return <span className="text-xs text-slate-400">&nbsp;</span>;
  if (d.kind === 'flat') return <span className="text-xs text-slate-500">no change vs previous period</span>;
  if (d.kind === 'new') return <span className="text-xs text-slate-500">new: nothing in the previous period</span>;
  const up = d.pct >= 0;
  const good = invert ? !up : up;
  return (
    <span className={cx('text-xs', good ? 'text-emerald-600 dark:text-emerald-400' : 'text-rose-600 dark:text-rose-400')}>
      {up ? '▲' : '▼'} {f.percent(Math.abs(d.pct))} {label}
    </span>
  );
}

function Kpi({ id, label, value, loading, d, points, invert, tone, hint, deltaLabel }: { id: string; label: string; value?: string; loading: boolean; d?: Delta; points?: number | null; invert?: boolean; tone?: 'pos' | 'neg' | 'zero'; hint?: string; deltaLabel?: string }) {
  return (
    <Card data-testid={`kpi-${id}`} title={hint}>
      <p className="text-xs font-medium tracking-wide text-slate-500 uppercase dark:text-slate-400">{label}</p>
      {loading ? (
        <Skeleton className="mt-2 h-7 w-24" />
      ) : (
        <p data-testid={`kpi-${id}-value`} className={cx('mt-1 truncate text-2xl font-semibold tabular-nums', tone === 'neg' && 'text-rose-600 dark:text-rose-400')}>
          {value ?? '—'}
        </p>
      )}
      <DeltaLine d={d} points={points} invert={invert} label={deltaLabel} />
    </Card>
  );
}

function UsageChart({ dash, usage, loading }: { dash?: Dashboard; usage?: Series; loading: boolean }) {
  const { filters } = useFilters();
  const rows = useMemo(() => (dash ? chartRows(filters.range, dash.time_series, usage?.series ?? []) : []), [dash, usage, filters.range]);
  const cur = filters.currency;
  return (
    <Card>
      <div className="mb-3 flex items-baseline justify-between">
        <h2 className="font-semibold">Usage vs revenue and cost</h2>
        <span className="text-xs text-slate-500">
          {f.day(filters.range.start)} – {f.day(filters.range.end)} · {filters.basis}
        </span>
      </div>
      {loading ? (
        <Skeleton className="h-72 w-full" />
      ) : (
        <div className="h-72" data-testid="usage-chart" data-points={rows.length} data-first-day={rows[0]?.date} data-last-day={rows[rows.length - 1]?.date}>
          <ResponsiveContainer width="100%" height="100%">
            <ComposedChart data={rows} margin={{ top: 5, right: 10, bottom: 0, left: 10 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="currentColor" strokeOpacity={0.1} />
              <XAxis dataKey="date" tickFormatter={(d: string) => f.day(d)} tick={{ fontSize: 11 }} minTickGap={24} />
              <YAxis yAxisId="money" tickFormatter={(v: number) => f.compactMoney(v, cur)} tick={{ fontSize: 11 }} width={64} />
              <YAxis yAxisId="usage" orientation="right" tickFormatter={(v: number) => f.compactQuantity(v)} tick={{ fontSize: 11 }} width={56} />
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
              <Bar yAxisId="usage" dataKey="nUsage" name="Usage" fill="#94a3b8" fillOpacity={0.35} isAnimationActive={false} />
              <Area yAxisId="money" dataKey="nRevenue" name="Revenue" stroke="#4f46e5" fill="#4f46e5" fillOpacity={0.12} strokeWidth={2} type="monotone" isAnimationActive={false} />
              <Line yAxisId="money" dataKey="nCost" name="Cost" stroke="#e11d48" strokeWidth={2} dot={false} type="monotone" isAnimationActive={false} />
            </ComposedChart>
          </ResponsiveContainer>
        </div>
      )}
    </Card>
  );
}

type Tab = 'customer' | 'feature' | 'plan';

function Breakdown({ customers, features, loading, error }: { customers?: CustomerList['customers']; features?: FeatureRow[]; loading: boolean; error: Error | null }) {
  const [tab, setTab] = useState<Tab>('customer');
  const [sort, setSort] = useState<{ key: string; dir: SortDir }>({ key: 'revenue', dir: 'desc' });
  const [q, setQ] = useState('');
  const cur = useFilters().filters.currency;
  const onSort = (k: string) => setSort((s) => ({ key: k, dir: s.key === k && s.dir === 'desc' ? 'asc' : 'desc' }));

  const rows = useMemo(() => {
    type Row = { key: string; label: string; sub?: string; usage: string; unpriced?: string; revenue: string; cost: string; profit: string; margin: number | null; count?: number };
    let out: Row[] = [];
    if (tab === 'customer' && customers)
      out = customers.map((c) => ({ key: c.id, label: c.name || c.id, sub: c.plan, usage: c.usage, revenue: c.revenue, cost: c.cost, profit: c.profit, margin: c.margin_defined ? toNumber(c.margin_percentage) : null }));
    if (tab === 'feature' && features)
      out = features.map((x) => ({ key: x.feature, label: x.feature, usage: x.usage, unpriced: x.unpriced_quantity, revenue: x.revenue, cost: x.cost, profit: x.profit, margin: x.margin_defined ? toNumber(x.margin_percentage) : null }));
    if (tab === 'plan' && customers)
      out = byPlan(customers).map((x) => ({ key: x.plan, label: x.plan || 'no plan', usage: x.usage, revenue: x.revenue, cost: x.cost, profit: x.profit, margin: marginPct(x.revenue, x.profit), count: x.customers }));
    const needle = q.trim().toLowerCase();
    if (needle) out = out.filter((r) => r.label.toLowerCase().includes(needle) || r.key.toLowerCase().includes(needle));
    return sortRows(out, (sort.key === 'name' ? 'label' : sort.key) as keyof Row, sort.dir);
  }, [tab, customers, features, sort, q]);

  return (
    <Card flush>
      <div className="flex flex-wrap items-center gap-3 border-b border-slate-200 p-4 dark:border-slate-800">
        <h2 className="mr-auto font-semibold">Breakdown</h2>
        <input aria-label="Filter rows" placeholder="Filter…" className={cx(inputClass, 'w-48')} value={q} onChange={(e) => setQ(e.target.value)} />
        <Tabs
          label="Breakdown by"
          value={tab}
          onChange={setTab}
          tabs={[
            { id: 'customer', label: 'Customers' },
            { id: 'feature', label: 'Features' },
            { id: 'plan', label: 'Plans' },
          ]}
        />
      </div>
      {error ? (
        <div className="p-4">
          <ErrorNote error={error} what="the breakdown" />
        </div>
      ) : loading ? (
        <div className="flex flex-col gap-2 p-4">
          {Array.from({ length: 6 }, (_, i) => (
            <Skeleton key={i} className="h-8 w-full" />
          ))}
        </div>
      ) : rows.length === 0 ? (
        <Empty title="Nothing to break down in this range">
          <p>Add a service or run `uvr demo`.</p>
        </Empty>
      ) : (
        <div className="max-h-[32rem] overflow-auto">
          <table className="w-full text-sm" data-testid={`breakdown-${tab}`}>
            <thead className="sticky top-0 bg-slate-50 text-xs text-slate-500 dark:bg-slate-900 dark:text-slate-400">
              <tr>
                <SortHeader label={tab === 'customer' ? 'Customer' : tab === 'feature' ? 'Feature' : 'Plan'} k="name" sort={sort} onSort={onSort} align="left" />
                <SortHeader label="Usage" k="usage" sort={sort} onSort={onSort} />
                <SortHeader label="Revenue" k="revenue" sort={sort} onSort={onSort} />
                <SortHeader label="Cost" k="cost" sort={sort} onSort={onSort} />
                <SortHeader label="Profit" k="profit" sort={sort} onSort={onSort} />
                <SortHeader label="Margin" k="margin" sort={sort} onSort={onSort} />
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.key} className="border-t border-slate-100 hover:bg-slate-50 dark:border-slate-800 dark:hover:bg-slate-800/50">
                  <td className="px-3 py-2">
                    {tab === 'plan' ? (
                      <span>
                        {r.label} <Badge>{r.count} customers</Badge>
                      </span>
                    ) : (
                      <button className="text-left font-medium text-indigo-700 hover:underline dark:text-indigo-300" onClick={() => setParams(tab === 'customer' ? { customer: r.key, feature: null } : { feature: r.key, customer: null })}>
                        {r.label}
                        {r.sub && <span className="ml-2 text-xs font-normal text-slate-500">{r.sub}</span>}
                      </button>
                    )}
                  </td>
                  <td className="px-3 py-2 text-right tabular-nums">{f.quantity(r.usage)}</td>
                  <td className="px-3 py-2 text-right tabular-nums">{f.money(r.revenue, cur)}</td>
                  <td className="px-3 py-2 text-right tabular-nums">
                    {f.money(r.cost, cur)}
                    {r.unpriced != null && sign(r.unpriced) !== 0 && (
                      <span className="ml-2" title="Usage no rate card prices: its cost is counted as 0. Add a price with PUT /api/rate-cards.">
                        <Badge tone="amber">{f.quantity(r.unpriced)} unpriced</Badge>
                      </span>
                    )}
                  </td>
                  <td className={cx('px-3 py-2 text-right tabular-nums', f.tone(r.profit) === 'neg' && 'text-rose-600 dark:text-rose-400')}>{f.money(r.profit, cur)}</td>
                  <td className="px-3 py-2">
                    <div className="flex justify-end">
                      <MarginBar pct={r.margin} />
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
