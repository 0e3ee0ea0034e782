// A stand-in for the original product's Next.js client, against a real
// `uvr run` (no demo): a small server on its own port serves the client's
// pages and proxies /api/* to uvr, rewriting Host as Next.js rewrites do. The
// page behaves as that client does (issue 16): it registers or logs in with a
// form, keeps access_token in localStorage and sends it as a bearer only to
// /api/dashboard and /api/auth/me; every other call is a same-origin relative
// fetch without credentials of its own (the session cookie is what
// authenticates them); it does arithmetic on the numbers it reads (toFixed);
// it judges a connection test by the HTTP status; a 401 sends it to /login.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, launchChromium, startUVR, until as poll } from './harness.mjs';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
const EMAIL = 'owner@example.com';
const PASSWORD = 'stand-in-' + Math.random().toString(36).slice(2);

let uvr, client, vendor, browser, ctx, page, clientURL;
const pageErrors = [];
const until = (what, f, ms = 45_000) => poll(what, f, ms, 250, (w) => uvr?.alive(w));

// The client's service forms: the credential fields it sends per type.
const FORMS = {
  openai: ['api_key', 'org_id'],
  anthropic: ['api_key'],
  aws: ['access_key_id', 'secret_access_key', 'region'],
  datadog: ['api_key', 'app_key', 'site'],
  'custom-usage': ['api_key', 'base_url', 'account_id'],
  stripe: ['api_key', 'account_id'],
  chargebee: ['api_key', 'site'],
  paddle: ['api_key', 'vendor_id'],
  recurly: ['api_key', 'subdomain'],
  braintree: ['merchant_id', 'public_key', 'private_key'],
  'custom-revenue': ['api_key', 'base_url', 'account_id'],
};
const CATEGORY = { openai: 'usage', anthropic: 'usage', aws: 'usage', datadog: 'usage', 'custom-usage': 'usage' };

// The page: one document for /login, /register and /dashboard.
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Usage vs Revenue (stand-in)</title></head>
<body><main id="app"></main><script>
const FORMS = ${JSON.stringify(FORMS)};
const CATEGORY = ${JSON.stringify(CATEGORY)};
const app = document.getElementById('app');
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => '&#' + c.charCodeAt(0) + ';');
const bearer = () => (localStorage.getItem('auth_token') ? { Authorization: 'Bearer ' + localStorage.getItem('auth_token') } : {});
const toLogin = () => { localStorage.removeItem('auth_token'); location.href = '/login'; };
const statuses = {};
async function call(path, init) {
  const r = await fetch(path, init);
  statuses[(init && init.method ? init.method : 'GET') + ' ' + path.split('?')[0]] = r.status;
  const shown = document.querySelector('[data-testid=statuses]');
  if (shown) shown.textContent = JSON.stringify(statuses);
  return r;
}
function enter(d) { localStorage.setItem('auth_token', d.access_token); location.href = '/dashboard'; }
function loginPage() {
  app.innerHTML = '<h1>Sign in</h1><form id="f"><label>Email <input name="email"></label><label>Password <input name="password" type="password"></label><button>Sign in</button></form><p id="err" role="alert"></p>';
  document.getElementById('f').onsubmit = async (e) => {
    e.preventDefault();
    const fd = new FormData();
    fd.append('username', e.target.email.value);
    fd.append('password', e.target.password.value);
    const r = await call('/api/auth/login', { method: 'POST', body: fd });
    const d = await r.json();
    if (!r.ok) { document.getElementById('err').textContent = d.detail || 'Login failed'; return; }
    enter(d);
  };
}
function registerPage() {
  app.innerHTML = '<h1>Register</h1><form id="f"><label>Email <input name="email"></label><label>Username <input name="username"></label><label>Password <input name="password" type="password"></label><button>Create account</button></form><p id="err" role="alert"></p>';
  document.getElementById('f').onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    const r = await call('/api/auth/register', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: f.email.value, username: f.username.value, password: f.password.value, full_name: 'Owner' }) });
    const d = await r.json();
    if (!r.ok) { document.getElementById('err').textContent = d.detail || 'Registration failed'; return; }
    enter(d);
  };
}
async function dashboardPage() {
  const me = await call('/api/auth/me', { headers: bearer() });
  if (!me.ok) return toLogin();
  const user = await me.json();
  const dash = await call('/api/dashboard', { headers: { 'Content-Type': 'application/json', ...bearer() } });
  if (dash.status === 401) return toLogin();
  const d = await dash.json();
  const cr = await call('/api/customers');
  const customers = cr.ok ? (await cr.json()).customers.map((c) => ({ ...c,
    status: c.revenue < c.usage * 0.001 ? 'unprofitable' : c.revenue_per_unit < 0.08 ? 'warning' : 'profitable' })) : [];
  const health = await (await call('/api/health')).json();
  const ab = await call('/api/airbyte/connections');
  const abBody = await ab.json();
  for (const c of abBody.success ? abBody.connections : []) await call('/api/airbyte/status/' + c.id);
  const totalUsage = d.feature_metrics.reduce((s, f) => s + f.usage_count, 0);
  app.innerHTML = '<h1>Dashboard of ' + esc(user.email) + '</h1>'
    + '<p data-testid="margin">' + d.summary.profit_margin_percentage.toFixed(1) + '%</p>'
    + '<p data-testid="revenue-per-unit">' + (totalUsage > 0 ? (d.summary.total_revenue / totalUsage).toFixed(6) : '0') + '</p>'
    + '<p data-testid="health">' + esc(JSON.stringify({ openai: health.openai_configured, stripe: health.stripe_configured })) + '</p>'
    + '<table data-testid="features">' + d.feature_metrics.map((f) => '<tr><td>' + esc(f.feature_name) + '</td><td>' + f.total_cost.toFixed(4) + '</td><td>' + f.profit_margin.toFixed(1) + '%</td></tr>').join('') + '</table>'
    + '<table data-testid="customers">' + customers.map((c) => '<tr><td>' + esc(c.name) + '</td><td>' + c.revenue.toFixed(2) + '</td><td>' + c.revenue_per_unit.toFixed(4) + '</td><td>' + c.status + '</td></tr>').join('') + '</table>'
    + '<p data-testid="series">' + d.time_series.reduce((s, p) => s + p.profit, 0).toFixed(2) + '</p>'
    + '<section><h2>Services</h2><ul data-testid="services"></ul>'
    + '<form id="svc"><select name="type">' + Object.keys(FORMS).map((t) => '<option>' + t + '</option>').join('') + '</select><div id="fields"></div>'
    + '<label>override base URL <input name="override"></label>'
    + '<button type="button" id="test">Test Connection</button><button type="submit">Add Service</button></form><p data-testid="result"></p></section>'
    + '<button id="settings">Save Settings</button><p data-testid="statuses"></p>';
  const form = document.getElementById('svc');
  const fields = () => { document.getElementById('fields').innerHTML = FORMS[form.type.value].map((k) => '<label>' + k + ' <input name="' + k + '"></label>').join(''); };
  form.type.onchange = fields;
  fields();
  // The form's fields, every one sent even when blank, as the client does;
  // the override (not in the client) points a native connector at a local
  // server instead of the vendor, which this machine cannot reach.
  const creds = () => ({ ...Object.fromEntries(FORMS[form.type.value].map((k) => [k, form[k].value])), ...(form.override.value ? { base_url: form.override.value } : {}) });
  const result = (ok, msg) => { document.querySelector('[data-testid=result]').textContent = (ok ? 'OK: ' : 'FAILED: ') + msg; };
  document.getElementById('test').onclick = async () => {
    const r = await call('/api/test-service', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ service_type: form.type.value, credentials: creds() }) });
    const b = await r.json();
    result(r.ok, b.message || (r.ok ? 'Connection successful!' : 'Connection failed'));
  };
  form.onsubmit = async (e) => {
    e.preventDefault();
    const t = form.type.value;
    const r = await call('/api/services', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ service_type: t, service_name: t + ' (stand-in)', service_category: CATEGORY[t] || 'revenue', credentials: creds() }) });
    const b = await r.json();
    result(r.ok, r.ok ? b.message : b.detail);
    await listServices();
  };
  document.getElementById('settings').onclick = async () => {
    const r = await call('/api/settings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ openai: { api_key: 'sk-x', org_id: '' }, stripe: { api_key: 'sk_test_x' } }) });
    const b = await r.json();
    result(r.ok, b.message + (b.deprecated ? ' (deprecated)' : ''));
  };
  await listServices();
}
async function listServices() {
  const r = await call('/api/services');
  if (r.status === 401) return toLogin();
  const list = (await r.json()).services || [];
  const ul = document.querySelector('[data-testid=services]');
  ul.innerHTML = list.map((s) => '<li data-type="' + esc(s.service_type) + '">' + esc(s.service_name) + ' <button data-id="' + esc(s.id) + '">Delete</button></li>').join('');
  for (const b of ul.querySelectorAll('button')) b.onclick = async () => { await call('/api/services/' + b.dataset.id, { method: 'DELETE' }); await listServices(); };
}
({ '/login': loginPage, '/register': registerPage, '/dashboard': dashboardPage }[location.pathname] || loginPage)();
</script></body></html>`;

/** proxy forwards one request to uvr, Host rewritten to uvr's, everything else as it came (cookies both ways). */
function proxy(req, res) {
  const target = new URL(uvr.base);
  const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => res.writeHead(502).end(String(e)));
  req.pipe(up);
}

/** api calls uvr directly with a bearer token, as a script would. */
async function api(token, method, path, body) {
  const res = await fetch(uvr.base + path, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

before(async () => {
  const port = await freePort();
  clientURL = `http://127.0.0.1:${port}`;
  // No admin from the environment: the stand-in registers the first user.
  uvr = await startUVR({ name: 'original-client', args: ['run'], env: { UVR_CORS_ORIGINS: clientURL, UVR_ADMIN_EMAIL: '', UVR_ADMIN_PASSWORD: '' }, out });
  await until('/api/health', async () => (await fetch(uvr.base + '/api/health')).ok, 120_000);
  client = createServer((req, res) => (req.url.startsWith('/api/') ? proxy(req, res) : res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE)));
  await new Promise((r) => client.listen(port, '127.0.0.1', r));
  // A vendor that refuses every key (a bare 401: no body of any vendor's
  // shape), noting the OpenAI-Organization header it was sent.
  vendor = createServer((req, res) => {
    vendor.orgs.push(req.headers['openai-organization']);
    res.writeHead(401).end();
  });
  vendor.orgs = [];
  await new Promise((r) => vendor.listen(0, '127.0.0.1', r));
  browser = await launchChromium();
  ctx = await browser.newContext({ locale: 'en-US' });
  page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  await browser?.close();
  client?.close();
  vendor?.close();
  await uvr?.stop();
});

test('the original client works against uvr through its own proxy', async () => {
  // Register the first user through the proxy: the answer is login's.
  await page.goto(clientURL + '/register');
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Username').fill('owner');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(clientURL + '/dashboard');
  await page.getByTestId('statuses').waitFor();

  // Data: a customer with usage and revenue, one with usage only (no
  // margin), one with revenue only (no revenue per unit); today, in USD.
  const { access_token: token } = await (await fetch(uvr.base + '/api/auth/login', { method: 'POST', body: new URLSearchParams({ username: EMAIL, password: PASSWORD }) })).json();
  const now = new Date(Date.now() - 60_000).toISOString();
  const usage = (id, cust, qty, cost) => ({ specversion: '1.0', id, source: 'stand-in', type: 'uvr.usage.v1', time: now,
    data: { customer: { external_id: cust, name: cust }, feature: 'gpt-4o.input_tokens', quantity: qty, cost, currency: 'USD' } });
  const revenue = (id, cust, amount) => ({ specversion: '1.0', id, source: 'stand-in', type: 'uvr.revenue.v1', time: now,
    data: { customer: { external_id: cust, name: cust }, kind: 'charge', amount, currency: 'USD' } });
  await api(token, 'POST', '/api/events', [usage('u1', 'acme', '125000', '0.3125'), revenue('r1', 'acme', '49.00'), usage('u2', 'globex', '1000', '0.25'), revenue('r2', 'initech', '20.10')]);
  await until('the events to reach the dashboard and the customer list', async () => {
    const d = await api(token, 'GET', '/api/dashboard');
    const c = await api(token, 'GET', '/api/customers');
    return String(d.summary.total_revenue) === '69.1' && String(d.summary.total_usage_cost) === '0.5625' && c.customers.map((x) => x.name).sort().join() === 'acme,globex,initech';
  });

  await page.goto(clientURL + '/dashboard');
  await page.getByTestId('statuses').waitFor();
  // The numbers it does arithmetic on: a feature without revenue is 0.0 %, not a crash.
  const features = await page.getByTestId('features').textContent();
  assert.match(features, /gpt-4o\.input_tokens0\.56250\.0%/, features);
  assert.match(features, /\(unattributed\)0\.0000100\.0%/, features);
  assert.equal(await page.getByTestId('margin').textContent(), '99.2%', '(69.1 − 0.5625) / 69.1');
  assert.equal(await page.getByTestId('series').textContent(), '68.54');
  const customers = await page.getByTestId('customers').textContent();
  // revenue_per_unit is a number even without usage (initech: 0, its flag false).
  for (const row of [/acme49\.000\.0004unprofitable/, /globex0\.000\.0000unprofitable/, /initech20\.100\.0000warning/]) assert.match(customers, row, customers);
  assert.equal(await page.getByTestId('health').textContent(), '{"openai":false,"stripe":false}');

  // Add services with the form's fields, the optional ones blank or filled.
  await page.getByRole('combobox').selectOption('openai');
  await page.getByLabel('api_key').fill('sk-admin-stand-in');
  await page.getByRole('button', { name: 'Add Service' }).click();
  await page.getByTestId('services').locator('li[data-type=openai]').waitFor();
  assert.match(await page.getByTestId('result').textContent(), /^OK: /);
  await page.getByRole('combobox').selectOption('stripe');
  await page.getByLabel('api_key').fill('sk_test_stand_in');
  await page.getByLabel('account_id').fill('acct_1StandIn');
  await page.getByRole('button', { name: 'Add Service' }).click();
  await page.getByTestId('services').locator('li[data-type=stripe]').waitFor();

  // A connection test the vendor refuses is a failure the client can see
  // (OpenAI's connector, pointed at a local server that refuses every key).
  await page.getByRole('combobox').selectOption('openai');
  await page.getByLabel('api_key').fill('sk-admin-not-the-key');
  await page.getByLabel('org_id').fill('org-stand-in');
  await page.getByLabel('override base URL').fill(`http://127.0.0.1:${vendor.address().port}`);
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await until('the test result', async () => /^FAILED: /.test(await page.getByTestId('result').textContent()), 15_000);
  assert.equal(vendor.orgs.at(-1), 'org-stand-in', 'org_id reached the vendor as OpenAI-Organization');
  await page.getByLabel('override base URL').fill('');

  // Delete one; the deprecated settings route answers as it did.
  await page.getByTestId('services').locator('li[data-type=openai]').getByRole('button', { name: 'Delete' }).click();
  await page.getByTestId('services').locator('li[data-type=openai]').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Save Settings' }).click();
  await until('the settings answer', async () => /\(deprecated\)$/.test(await page.getByTestId('result').textContent()), 15_000);

  // Nothing the client called was refused for want of credentials; each
  // relative write went through uvr's cross-site check on the cookie.
  const statuses = JSON.parse(await page.getByTestId('statuses').textContent());
  for (const call of ['GET /api/customers', 'GET /api/health', 'GET /api/services', 'POST /api/services', 'POST /api/test-service', 'DELETE /api/services/', 'GET /api/airbyte/connections', 'POST /api/settings']) {
    const hit = Object.entries(statuses).filter(([k]) => k.startsWith(call));
    assert.ok(hit.length, `${call} was called: ${JSON.stringify(statuses)}`);
    for (const [k, s] of hit) assert.ok(s !== 401 && s !== 403, `${k} → ${s}`);
  }
  assert.equal(statuses['POST /api/test-service'], 422, 'refused credentials are a 422');
  const services = await api(token, 'GET', '/api/services');
  assert.deepEqual(services.services.map((s) => s.service_type), ['stripe']);
  const health = await api(token, 'GET', '/api/health');
  assert.equal(health.stripe_configured, true);
  assert.equal(health.openai_configured, false);

  // The session ends (an expired token, in localStorage and the cookie): the next load goes to the login page.
  await ctx.addCookies([{ name: 'uvr_session', value: 'expired', url: clientURL }]);
  await page.evaluate(() => localStorage.setItem('auth_token', 'expired'));
  await page.goto(clientURL + '/dashboard');
  await page.waitForURL(clientURL + '/login');
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until('the login error', async () => (await page.getByRole('alert').textContent()).length > 0, 15_000);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(clientURL + '/dashboard');
  await page.getByTestId('statuses').waitFor();
  assert.deepEqual(pageErrors, [], 'no script error in the client');
});
