import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { get, logout, me, setUnauthorizedHandler, type Insight, type User } from './lib/api';
import { FiltersProvider } from './lib/filters';
import { navigate, PAGES, useLocation } from './lib/router';
import { isAdmin } from './lib/users';
import { Button, cx, Empty, ToastProvider } from './components/ui';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { Insights } from './pages/Insights';
import { Services } from './pages/Services';
import { Pipelines } from './pages/Pipelines';
import { Users } from './pages/Users';

export function App() {
  return (
    <ToastProvider>
      <FiltersProvider>
        <Shell />
      </FiltersProvider>
    </ToastProvider>
  );
}

/**
 * Shell shows the login page until there is a session. The session is the
 * HttpOnly cookie the server sets at login: the app never sees the token, so
 * it asks who the session belongs to (GET /api/auth/me) on load.
 */
function Shell() {
  const qc = useQueryClient();
  // undefined: not known yet; null: no session.
  const [user, setUser] = useState<User | null | undefined>(undefined);
  useEffect(() => {
    // Any 401 (the session expired, or the user was deactivated) returns to the login page.
    setUnauthorizedHandler(() => {
      setUser(null);
      qc.clear();
    });
    let live = true;
    me().then(
      (u) => live && setUser(u),
      () => live && setUser(null),
    );
    return () => {
      live = false;
    };
  }, [qc]);

  if (user === undefined) return null;
  if (user === null) return <Login onLogin={setUser} />;
  const onLogout = () => {
    // The login page shows once the server cleared the cookie (or could not be reached).
    void logout()
      .catch(() => {})
      .finally(() => {
        qc.clear();
        setUser(null);
      });
  };
  return <Layout user={user} onLogout={onLogout} />;
}

function useTheme(): [boolean, () => void] {
  const [dark, setDark] = useState(() => document.documentElement.classList.contains('dark'));
  const toggle = () => {
    const d = !dark;
    document.documentElement.classList.toggle('dark', d);
    localStorage.setItem('uvr.theme', d ? 'dark' : 'light');
    setDark(d);
  };
  return [dark, toggle];
}

function Layout({ user, onLogout }: { user: User; onLogout: () => void }) {
  const loc = useLocation();
  const admin = isAdmin(user);
  const [dark, toggleTheme] = useTheme();
  // The navigation's badge: open critical flags, refreshed every minute.
  const critical = useQuery({
    queryKey: ['insights', 'open-critical'],
    queryFn: () => get<{ insights: Insight[] }>('/api/insights?status=open&severity=critical'),
    refetchInterval: 60_000,
  });
  const criticalCount = critical.data?.insights.length ?? 0;

  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:top-2 focus:left-2 focus:z-50 focus:rounded focus:bg-white focus:px-3 focus:py-1">
        Skip to content
      </a>
      <header className="sticky top-0 z-30 border-b border-slate-200 bg-white/90 backdrop-blur dark:border-slate-800 dark:bg-slate-950/90">
        <div className="mx-auto flex max-w-7xl items-center gap-6 px-4 py-2.5">
          <a
            href="/"
            onClick={(e) => {
              e.preventDefault();
              navigate('/');
            }}
            className="flex items-center gap-2 font-semibold"
          >
            <img src="/favicon.svg" alt="" className="h-6 w-6" />
            uvr
          </a>
          <nav aria-label="Main" className="flex items-center gap-1 overflow-x-auto">
            {PAGES.filter((p) => !p.admin || admin).map((p) => (
              <a
                key={p.id}
                href={p.path}
                aria-current={loc.page === p.id ? 'page' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(p.path);
                }}
                className={cx(
                  'flex items-center gap-1.5 rounded-md px-3 py-1.5 text-sm font-medium',
                  loc.page === p.id ? 'bg-slate-100 text-slate-900 dark:bg-slate-800 dark:text-white' : 'text-slate-600 hover:text-slate-900 dark:text-slate-400 dark:hover:text-white',
                )}
              >
                {p.label}
                {p.id === 'insights' && criticalCount > 0 && (
                  <span data-testid="critical-badge" aria-label={`${criticalCount} open critical insights`} className="rounded-full bg-rose-600 px-1.5 text-xs text-white">
                    {criticalCount}
                  </span>
                )}
              </a>
            ))}
          </nav>
          <div className="ml-auto flex items-center gap-2 text-sm">
            <Button variant="ghost" onClick={toggleTheme} aria-label={dark ? 'Switch to light mode' : 'Switch to dark mode'}>
              {dark ? '☀' : '☾'}
            </Button>
            <span className="hidden text-slate-500 md:inline dark:text-slate-400">{user.email}</span>
            <Button variant="ghost" onClick={onLogout}>
              Log out
            </Button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        {loc.page === 'overview' && <Overview params={loc.params} />}
        {loc.page === 'insights' && <Insights />}
        {loc.page === 'services' && <Services />}
        {loc.page === 'pipelines' && <Pipelines />}
        {loc.page === 'users' &&
          (admin ? (
            <Users me={user} />
          ) : (
            <Empty title="Users are managed by admins">
              <p>Your role is {user.role ?? 'unknown'}; ask an admin to change users.</p>
            </Empty>
          ))}
      </main>
    </div>
  );
}
