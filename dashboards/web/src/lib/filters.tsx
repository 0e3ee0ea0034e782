import { createContext, useContext, useState, type ReactNode } from 'react';
import { lastDays, type DateRange } from './range';

// The filters every page's queries take: the date range, the reporting
// currency and the revenue basis (api: start_date, end_date, currency, basis).

export type Basis = 'accrual' | 'cash';

export interface Filters {
  range: DateRange;
  preset: number | null; // 7, 30, 90 or null for a custom range
  currency: string;
  basis: Basis;
}

export const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CAD', 'AUD'];

const Ctx = createContext<{ filters: Filters; set: (f: Partial<Filters>) => void } | null>(null);

export function FiltersProvider({ children }: { children: ReactNode }) {
  const [filters, setFilters] = useState<Filters>({ range: lastDays(30), preset: 30, currency: 'USD', basis: 'accrual' });
  return <Ctx.Provider value={{ filters, set: (f) => setFilters((old) => ({ ...old, ...f })) }}>{children}</Ctx.Provider>;
}

export function useFilters() {
  const c = useContext(Ctx);
  if (!c) throw new Error('useFilters outside FiltersProvider');
  return c;
}

/** params are the query parameters of a range query. */
export function rangeParams(f: Filters, range: DateRange = f.range) {
  return { start_date: range.start, end_date: range.end, currency: f.currency, basis: f.basis };
}
