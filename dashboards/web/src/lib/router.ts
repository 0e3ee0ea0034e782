import { useEffect, useState } from 'react';

// A router of five pages does not need a library: the path picks the page,
// the query string holds the open drilldown, history.pushState navigates.

export type Page = 'overview' | 'insights' | 'services' | 'pipelines' | 'users';

/** The pages; admin ones show in the navigation to admins only (the API refuses others with 403 anyway). */
export const PAGES: { id: Page; path: string; label: string; admin?: boolean }[] = [
  { id: 'overview', path: '/', label: 'Overview' },
  { id: 'insights', path: '/insights', label: 'Insights' },
  { id: 'services', path: '/services', label: 'Services' },
  { id: 'pipelines', path: '/pipelines', label: 'Pipelines' },
  { id: 'users', path: '/users', label: 'Users', admin: true },
];

export interface Location {
  page: Page;
  params: URLSearchParams;
}

function read(): Location {
  const p = PAGES.find((x) => x.path === window.location.pathname.replace(/\/+$/, '') || (x.path === '/' && window.location.pathname === '/'));
  return { page: p?.id ?? 'overview', params: new URLSearchParams(window.location.search) };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((l) => l()));

export function navigate(path: string): void {
  window.history.pushState(null, '', path);
  listeners.forEach((l) => l());
}

/** setParam changes one query parameter of the current page (null removes it). */
export function setParams(changes: Record<string, string | null>): void {
  const u = new URL(window.location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v == null) u.searchParams.delete(k);
    else u.searchParams.set(k, v);
  }
  navigate(u.pathname + u.search);
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const l = () => setLoc(read());
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return loc;
}
