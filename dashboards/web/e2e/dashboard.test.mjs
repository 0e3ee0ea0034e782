// End-to-end test of the dashboard in headless Chromium (Debian's, driven by
// playwright-core) against a real `uvr run --demo`: its own data directory,
// ClickHouse database, free ports and admin user. Run by `make web-test`
// (UVR_BIN = the built binary; UVR_CLICKHOUSE_* from deploy/services).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, startUVR, until as poll } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'test-results');
const docsShots = join(here, '..', '..', '..', 'docs', 'screenshots');
// UVR_E2E_URL (with UVR_E2E_EMAIL/PASSWORD) points the test at a running
// uvr instead of starting one: for iterating on the app with `npm run dev`.
const external = process.env.UVR_E2E_URL;
const EMAIL = external ? process.env.UVR_E2E_EMAIL : 'admin@example.com';
const PASSWORD = external ? process.env.UVR_E2E_PASSWORD : 'e2e-' + Math.random().toString(36).slice(2);
// Projecting the demo's ~100 k events takes 1–2 min on a busy 2-core machine.
const WAIT = 300_000;

let uvr, base, token, browser, ctx, page, vendor;

/** until polls f with a deadline, failing at once if uvr exits. */
const until = (what, f, ms = WAIT, every = 250) => poll(what, f, ms, every, (w) => uvr?.alive(w));

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text;
}

/** The exact text of a JSON number field (money is exact in the API: never parsed to a float here). */
function field(json, name) {
  const m = json.match(new RegExp(`"${name}":(-?[0-9.eE+-]+|null)`));
  assert.ok(m, `${name} in ${json.slice(0, 300)}`);
  return m[1] === 'null' ? null : m[1];
}

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function lastDays(n) {
  const now = new Date();
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const iso = (t) => new Date(t).toISOString().slice(0, 10);
  return { start: iso(end - (n - 1) * 86_400_000), end: iso(end) };
}

async function shot(name) {
  await page.screenshot({ path: join(out, `${name}.png`) });
}

before(async () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  if (external) base = external;
  else {
    uvr = await startUVR({ name: 'web-e2e', args: ['run', '--demo'], env: { UVR_ADMIN_EMAIL: EMAIL, UVR_ADMIN_PASSWORD: PASSWORD }, out });
    base = uvr.base;
  }
  await until('/api/health', async () => (await fetch(base + '/api/health')).ok);
  const login = await fetch(base + '/api/auth/login', { method: 'POST', body: new URLSearchParams({ username: EMAIL, password: PASSWORD }) });
  assert.equal(login.status, 200, 'POST /api/auth/login with the admin of UVR_ADMIN_EMAIL');
  token = (await login.json()).access_token;

  // The demo history is in once uvr logs it sent, the projector has no lag,
  // no day awaits its aggregate, and two reads of the totals agree.
  if (!external) await until('the demo history to be sent', () => uvr.log().includes('demo history sent'));
  const r90 = lastDays(90);
  let prev = '';
  await until('the demo data to be aggregated', async () => {
    const m = await (await fetch(base + '/metrics')).text();
    const lag = [...m.matchAll(/^uvr_kafka_consumer_lag_messages\{[^}]*\} (\S+)$/gm)].reduce((s, x) => s + Number(x[1]), 0);
    const dirty = m.match(/^uvr_aggregates_dirty_days_pending(?:\{[^}]*\})? (\S+)$/m);
    if (lag !== 0 || !dirty || Number(dirty[1]) !== 0) return false;
    const d = await api('GET', `/api/dashboard?start_date=${r90.start}&end_date=${r90.end}`);
    const now = field(d, 'total_revenue') + '/' + field(d, 'total_usage_cost');
    const same = now === prev && field(d, 'total_revenue') !== '0';
    prev = now;
    return same;
  }, WAIT, 1000);

  // A tiny custom usage API for the "add a service" step: it answers the
  // first page to the right bearer key only.
  vendor = createServer((req, res) => {
    if (req.headers.authorization !== 'Bearer vendor-secret-key-123') {
      res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":"bad key"}');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":[]}');
  });
  await new Promise((r) => vendor.listen(0, '127.0.0.1', r));

  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light' });
  page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
});

after(async () => {
  await browser?.close();
  vendor?.close();
  await uvr?.stop();
});

test('a wrong password is refused with the API message, the right one logs in', async () => {
  await page.goto(base + '/');
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await shot('login');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('kpi-revenue-value').waitFor();
});

test('the overview KPIs equal /api/dashboard', async () => {
  const r = lastDays(30);
  const d = await api('GET', `/api/dashboard?start_date=${r.start}&end_date=${r.end}&currency=USD&basis=accrual`);
  const want = {
    revenue: usd.format(field(d, 'total_revenue')),
    cost: usd.format(field(d, 'total_usage_cost')),
    profit: usd.format(field(d, 'total_profit')),
    margin: pct.format(field(d, 'profit_margin_percentage')) + '%',
  };
  for (const [k, v] of Object.entries(want)) {
    await until(`KPI ${k} = ${v}`, async () => (await page.getByTestId(`kpi-${k}-value`).textContent()) === v, 30_000);
  }
  assert.notEqual(want.revenue, '$0.00', 'the demo has revenue in the last 30 days');
  const customers = await page.getByTestId('kpi-active-customers-value').textContent();
  assert.match(customers, /^[1-9][0-9,]*$/);
  await page.getByTestId('breakdown-customer').waitFor();
  await shot('overview');
});

test('changing the range updates the chart', async () => {
  const chart = page.getByTestId('usage-chart');
  assert.equal(await chart.getAttribute('data-points'), '30');
  const r7 = lastDays(7);
  const fetched = page.waitForResponse((res) => res.url().includes('/api/dashboard') && res.url().includes(`start_date=${r7.start}`));
  await page.getByRole('button', { name: '7d' }).click();
  assert.equal((await fetched).status(), 200);
  await until('a 7-day chart', async () => (await chart.getAttribute('data-points')) === '7' && (await chart.getAttribute('data-first-day')) === r7.start, 30_000);
  await page.getByRole('button', { name: '90d' }).click();
  await until('a 90-day chart', async () => (await chart.getAttribute('data-points')) === '90', 30_000);
  await page.getByRole('button', { name: '30d' }).click();
  await until('the 30-day chart again', async () => (await chart.getAttribute('data-points')) === '30', 30_000);
});

test('a customer drilldown shows its figures', async () => {
  const first = page.getByTestId('breakdown-customer').locator('tbody tr').first().getByRole('button');
  const name = (await first.textContent()) ?? '';
  await first.click();
  const title = page.getByTestId('drilldown-title');
  await title.waitFor();
  assert.ok(name.startsWith((await title.textContent()) ?? '?'), `drilldown of ${name}`);
  await page.getByTestId('drilldown-chart').waitFor();
  await page.getByText('Features used').waitFor();
  await shot('drilldown');
  // What-if: the same customer on a plan of 1000 a month, as the API computes it.
  await page.getByLabel(/Plan price/).fill('1000');
  await page.getByRole('button', { name: 'Simulate' }).click();
  const sim = page.getByTestId('simulation');
  await sim.waitFor();
  assert.match(await sim.textContent(), /With this plan/);
  await page.keyboard.press('Escape');
  await title.waitFor({ state: 'detached' });
});

test('the keyboard reaches the feature breakdown and its drilldown', async () => {
  await page.getByRole('tab', { name: 'Customers' }).focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getByRole('tab', { name: 'Features' }).getAttribute('aria-selected'), 'true');
  const first = page.getByTestId('breakdown-feature').locator('tbody tr').first().getByRole('button');
  const feature = (await first.textContent()) ?? '';
  await first.focus();
  await page.keyboard.press('Enter');
  const title = page.getByTestId('drilldown-title');
  assert.equal(await title.textContent(), feature);
  await page.getByTestId('drilldown-chart').waitFor();
  await shot('feature-drilldown');
  await page.keyboard.press('Escape');
  await title.waitFor({ state: 'detached' });
  await page.getByRole('tab', { name: 'Features' }).focus();
  await page.keyboard.press('ArrowLeft');
});

test('an insight can be acknowledged', async () => {
  let open = JSON.parse(await api('GET', '/api/insights?status=open')).insights;
  if (open.length === 0) {
    await api('POST', '/api/insights/run');
    open = JSON.parse(await api('GET', '/api/insights?status=open')).insights;
  }
  assert.ok(open.length > 0, 'the demo data raises insights');
  await page.getByRole('link', { name: /^Insights/ }).click();
  const card = page.getByTestId('insight').first();
  await card.waitFor();
  const id = await card.getAttribute('data-insight-id');
  await shot('insights');
  await card.getByRole('button', { name: 'Acknowledge' }).click();
  await page.getByTestId('toast-success').first().waitFor();
  const all = JSON.parse(await api('GET', '/api/insights')).insights;
  assert.equal(all.find((i) => i.id === id)?.status, 'acknowledged');
});

test('a service is tested, added and listed; its key is never shown back', async () => {
  const key = 'vendor-secret-key-123';
  const name = 'Acme usage API ' + Math.random().toString(36).slice(2, 6);
  await page.getByRole('link', { name: 'Services' }).click();
  await page.getByRole('button', { name: '+ Add service' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add a service' });
  await dialog.getByRole('radio', { name: /usage/ }).check();
  await dialog.getByLabel('2. Type').selectOption('custom-usage');
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('API key').fill(key);
  assert.equal(await dialog.getByLabel('API key').getAttribute('type'), 'password');
  await dialog.getByLabel('Base URL').fill(`http://127.0.0.1:${vendor.address().port}`);
  await dialog.getByLabel('Records path').fill('data');
  await dialog.getByLabel('Mapping', { exact: true }).fill(
    ['version: 1', 'source: acme', 'streams:', '  custom-usage:', '    - type: usage', '      id: {path: id}', '      time: {path: timestamp}', '      customer: {external_id: {path: customer_id}}', '      feature: {path: metric}', '      quantity: {path: quantity}'].join('\n'),
  );
  await dialog.getByRole('button', { name: '4. Test' }).click();
  const result = dialog.getByTestId('test-result');
  await result.waitFor();
  assert.equal(await result.getAttribute('role'), 'status', await result.textContent());
  await shot('services-add');
  await dialog.getByRole('button', { name: 'Add', exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByTestId('service-row').filter({ hasText: name }).waitFor();
  assert.ok(!(await page.content()).includes(key), 'the key is not in the page');
  await shot('services');
  // Delete asks first; confirmed, the service leaves the list.
  const row = page.getByTestId('service-row').filter({ hasText: name });
  await row.getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete service' });
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assert.ok(!JSON.parse(await api('GET', '/api/services')).services.some((s) => s.service_name === name));
});

test('the pipelines page shows health and sync runs', async () => {
  await page.getByRole('link', { name: 'Pipelines' }).click();
  await page.getByTestId('health').waitFor();
  // The projector's lag from /metrics: caught up (the demo was aggregated in before()).
  const projector = page.getByTestId('lag').locator('tr', { hasText: 'uvr-projector' }).first();
  await projector.waitFor();
  assert.match(await projector.textContent(), /uvr\.events\.v1\s*0$/);
  await page.getByText('Recent sync runs').waitFor();
  await shot('pipelines');
});

/** loginStatus is the status of a password login of email (200, or 401 once it is deactivated). */
async function loginStatus(email, password) {
  const res = await fetch(base + '/api/auth/login', { method: 'POST', body: new URLSearchParams({ username: email, password }) });
  await res.body?.cancel();
  return res.status;
}

test('an admin changes, deactivates, reactivates and deletes a user; the last admin stays', async () => {
  const email = `ana-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = 'e2e-' + Math.random().toString(36).slice(2);
  const created = JSON.parse(await api('POST', '/api/auth/register', { email, password, role: 'viewer' }));
  const users = async () => JSON.parse(await api('GET', '/api/users')).users;
  const done = (text) => page.getByTestId('toast-success').filter({ hasText: text }).waitFor();

  await page.getByRole('link', { name: 'Users' }).click();
  const row = page.getByTestId('user-row').filter({ hasText: email });
  await row.waitFor();
  assert.equal(await row.getByLabel(`Role of ${email}`).inputValue(), 'viewer');
  await shot('users');

  // Role: the select sends the change at once.
  await row.getByLabel(`Role of ${email}`).selectOption('analyst');
  await done(`${email} is now analyst`);
  assert.equal((await users()).find((u) => u.email === email)?.role, 'analyst');

  // Only admins see the page: the analyst's navigation has no Users.
  const other = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US' });
  try {
    const p = await other.newPage();
    await p.goto(base + '/');
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('link', { name: 'Pipelines' }).waitFor();
    assert.equal(await p.getByRole('link', { name: 'Users' }).count(), 0);
  } finally {
    await other.close();
  }

  // Deactivated: its password and its token are refused at once.
  assert.equal(await loginStatus(email, password), 200);
  await row.getByRole('button', { name: `Deactivate ${email}` }).click();
  await done(`${email} is deactivated`);
  await row.getByText('inactive', { exact: true }).waitFor();
  assert.equal(await loginStatus(email, password), 401);
  const meRes = await fetch(base + '/api/auth/me', { headers: { Authorization: `Bearer ${created.access_token}` } });
  assert.equal(meRes.status, 401, 'the token of a deactivated user');

  await row.getByRole('button', { name: `Activate ${email}` }).click();
  await done(`${email} is active again`);
  assert.equal(await loginStatus(email, password), 200);

  // Delete asks first; confirmed, the user leaves the list and the API.
  await row.getByRole('button', { name: `Delete ${email}` }).click();
  await page.getByRole('dialog', { name: 'Delete user' }).getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assert.ok(!(await users()).some((u) => u.email === email));
  assert.equal(await loginStatus(email, password), 401);

  // The only admin cannot demote itself: the API's 409 message is shown, the role stays.
  const self = page.getByTestId('user-row').filter({ hasText: EMAIL });
  await self.getByLabel(`Role of ${EMAIL}`).selectOption('viewer');
  const refused = page.getByTestId('toast-error').filter({ hasText: 'the last active admin cannot be demoted' });
  await refused.waitFor();
  await shot('users-last-admin');
  assert.equal(await self.getByLabel(`Role of ${EMAIL}`).inputValue(), 'admin');
  assert.equal((await users()).find((u) => u.email === EMAIL)?.role, 'admin');
});

test('dark mode, and the screenshots for the README', async () => {
  await page.getByRole('button', { name: 'Switch to dark mode' }).click();
  assert.equal(await page.evaluate(() => document.documentElement.classList.contains('dark')), true);
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByTestId('kpi-revenue-value').waitFor();
  await page.getByRole('button', { name: 'Switch to light mode' }).click();
  if (process.env.UVR_WEB_SCREENSHOTS) {
    mkdirSync(docsShots, { recursive: true });
    for (const n of ['overview', 'drilldown']) copyFileSync(join(out, `${n}.png`), join(docsShots, `${n}.png`));
  }
});

test('the session is an HttpOnly cookie: no token in script reach', async () => {
  const session = (await ctx.cookies(base)).find((c) => c.name === 'uvr_session');
  assert.ok(session, 'login set the session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!stored.includes(session.value), 'the token is not in localStorage, sessionStorage or document.cookie');
});

test('a 401 returns to the login page', async () => {
  // A session the server no longer accepts (expired, revoked, or another server's).
  await ctx.addCookies([{ name: 'uvr_session', value: 'revoked-token', url: base }]);
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
});

test('log out ends the session', async () => {
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('kpi-revenue-value').waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.ok(!(await ctx.cookies(base)).some((c) => c.name === 'uvr_session'), 'the server cleared the cookie');
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
});
