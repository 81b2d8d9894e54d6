// The admin console end to end, in Debian's headless Chromium driven by
// playwright-core, against a console that reaches the database through
// pgbouncer in transaction mode (one server connection for every console
// connection). node-postgres, as a superuser, checks what the database
// holds after each action. Run by console/e2e/run.sh, which starts the
// cluster, seeds console/demo/seed.sql and starts the console.
//
// Environment: CONSOLE_URL, DEMO_JSON (the seed's tokens), CONSOLE_LOG (the
// console's stderr), SCREENSHOTS (a folder), PGHOST/PGPORT/PGUSER/PGDATABASE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { chromium } from 'playwright-core';
import pg from 'pg';

const URL_ = process.env.CONSOLE_URL;
const demo = JSON.parse(readFileSync(process.env.DEMO_JSON, 'utf8'));
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

let browser, db, ctx, page;
// Every secret this run saw: none may be in a URL, a log line, or a page
// after its one showing.
const secrets = [demo.admin_token, demo.member_token, demo.globex_admin_token, demo.ingest_token];
const urls = [];

async function newContext() {
  const c = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await c.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL_ });
  c.on('request', (r) => urls.push(r.url()));
  return c;
}

async function signIn(p, token) {
  await p.goto(`${URL_}/login`);
  await p.fill('#token', token);
  await Promise.all([p.waitForLoadState('load'), p.click('#sign-in')]);
}

async function verifies(token) {
  try {
    const r = await db.query('select identity.verify_api_token($1) as p', [token]);
    return r.rows[0].p;
  } catch (e) {
    assert.equal(e.code, '28000', `verify_api_token: ${e.message}`);
    return null;
  }
}

async function serviceUserCount() {
  const r = await db.query("select count(*)::int as n from identity.users where is_service_user and organization_id = $1", [demo.acme]);
  return r.rows[0].n;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
           '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  db = new pg.Client();
  await db.connect();
  ctx = await newContext();
  page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  await browser?.close();
  await db?.end();
});

test('a signed-out browser reaches nothing', async () => {
  const c = await newContext();
  const p = await c.newPage();
  for (const path of ['/', '/service-users', `/service-users/${demo.ingest_id}`,
                      `/service-users/${demo.ingest_id}/delete`, '/audit', '/credentials', '/nope']) {
    await p.goto(URL_ + path);
    assert.equal(new URL(p.url()).pathname, '/login', path);
    assert.equal(await p.locator('table').count(), 0, path);
  }
  // A POST without a session does nothing.
  const before_ = await serviceUserCount();
  const r = await p.request.post(`${URL_}/service-users`, { form: { email: 'x@acme.test' } });
  assert.equal(r.status(), 403);
  const r2 = await p.request.post(`${URL_}/service-users/${demo.ingest_id}/suspend`, { form: { reason: 'x' } });
  assert.equal(r2.status(), 403);
  assert.equal(await serviceUserCount(), before_);
  assert.equal((await db.query('select status from identity.users where id = $1', [demo.ingest_id])).rows[0].status, 'active');
  await c.close();
});

test('a page of another site resolved to loopback (DNS rebinding) gets nothing', async () => {
  const u = new URL(URL_);
  const get = (host) => new Promise((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: u.port, path: '/login', headers: { Host: host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    r.on('error', reject);
    r.end();
  });
  assert.equal(await get(`evil.example:${u.port}`), 421);
  assert.equal(await get(`localhost:${u.port}`), 200);
});

test('a token that does not authenticate is refused', async () => {
  const c = await newContext();
  const p = await c.newPage();
  await signIn(p, 'idt_notarealtoken000000000000000000000000');
  assert.equal(new URL(p.url()).pathname, '/login');
  assert.match(await p.locator('#error').innerText(), /does not authenticate/);
  await c.close();
});

test('a member who is not an admin is refused', async () => {
  const c = await newContext();
  const p = await c.newPage();
  await signIn(p, demo.member_token);
  assert.match(await p.locator('#error').innerText(), /for organization admins/);
  const cookies = await c.cookies();
  assert.ok(!cookies.some((k) => k.name === 'identity_console' && k.value), 'no session for a member');
  await p.goto(`${URL_}/service-users`);
  assert.equal(new URL(p.url()).pathname, '/login');
  await c.close();
});

test('the admin signs in; the session cookie is HttpOnly, SameSite=Strict and not the token', async () => {
  await signIn(page, demo.admin_token);
  assert.equal(new URL(page.url()).pathname, '/service-users');
  assert.equal(await page.locator('#who').innerText(), demo.admin_email);
  assert.equal(await page.locator('#org-name').innerText(), 'Acme Robotics');
  const cookie = (await ctx.cookies()).find((k) => k.name === 'identity_console');
  assert.ok(cookie.httpOnly);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(!secrets.includes(cookie.value));
  const emails = await page.locator('#service-users tbody tr[data-email]').evaluateAll((rows) => rows.map((r) => r.dataset.email));
  assert.deepEqual(emails.sort(), ['billing-sync@acme.test', 'ingest@acme.test', 'legacy-cron@acme.test']);
  await page.screenshot({ path: `${shots}/service-users.png`, fullPage: true });
});

test("another organization's service users are invisible", async () => {
  assert.equal(await page.locator(`text=${demo.globex_service_user}`).count(), 0);
  const r = await page.goto(`${URL_}/service-users/${demo.globex_service_user_id}`);
  assert.equal(r.status(), 404);
  assert.match(await page.locator('#error').innerText(), /does not exist \(P0002\)/);
  // Acting on it is refused the same way, and changes nothing.
  await page.goto(`${URL_}/service-users`);
  const csrf = await page.locator('input[name=csrf]').first().inputValue();
  await page.request.post(`${URL_}/service-users/${demo.globex_service_user_id}/suspend`, { form: { csrf, reason: 'x' } });
  const st = await db.query('select status from identity.users where id = $1', [demo.globex_service_user_id]);
  assert.equal(st.rows[0].status, 'active');
});

let svc; // { id, token }
test('create a service user: its token is shown once, copied, and never again', async () => {
  await page.goto(`${URL_}/service-users`);
  await page.fill('#email', 'reports@acme.test');
  await page.fill('#application_name', 'Weekly reports');
  await page.fill('#description', 'Mails the weekly KPI report');
  await Promise.all([page.waitForURL(/\/service-users\/[0-9a-f-]{36}$/), page.click('#create-service-user')]);
  const token = (await page.locator('#secret').innerText()).trim();
  assert.match(token, /^idt_[0-9A-Za-z]{36}$/);
  await page.screenshot({ path: `${shots}/service-user-created.png`, fullPage: true });
  await page.click('#copy');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  const id = new URL(page.url()).pathname.split('/').pop();
  svc = { id, token };
  secrets.push(token);
  const principal = await verifies(token);
  assert.equal(principal.user_id, id);
  assert.equal(principal.is_service_user, true);
  const row = await db.query('select created_by, application_name from identity.users where id = $1', [id]);
  assert.equal(row.rows[0].application_name, 'Weekly reports');
  assert.ok(row.rows[0].created_by, 'created_by recorded');
  // Reloading does not show it again, nor does any other page.
  await page.reload();
  assert.equal(await page.locator('#reveal').count(), 0);
  assert.ok(!(await page.content()).includes(token));
  await page.goto(`${URL_}/service-users`);
  assert.ok(!(await page.content()).includes(token));
  assert.equal(await page.locator('tr[data-email="reports@acme.test"]').count(), 1);
});

test("the extension's errors are shown as its message and hint", async () => {
  await page.goto(`${URL_}/service-users`);
  await page.fill('#email', 'reports@acme.test'); // taken
  await page.click('#create-service-user');
  await page.waitForLoadState('load');
  const err = await page.locator('#error').innerText();
  assert.match(err, /23505/);
  assert.doesNotMatch(err, /panicked|backtrace|\.rs:\d+|at .*\(/);
  await page.fill('#email', 'other@acme.test');
  await page.fill('#application_id', 'not-a-uuid');
  await page.click('#create-service-user');
  await page.waitForLoadState('load');
  assert.match(await page.locator('#error').innerText(), /not a uuid/);
  assert.equal((await db.query("select count(*)::int as n from identity.users where email = 'other@acme.test'")).rows[0].n, 0);
});

test('edit application and description', async () => {
  await page.goto(`${URL_}/service-users/${svc.id}`);
  await page.fill('#application_name', 'Reports v2');
  await page.fill('#description', 'Mails the KPI report every Monday');
  await page.click('#save');
  await page.waitForLoadState('load');
  assert.match(await page.locator('#notice').innerText(), /saved/);
  const row = await db.query('select application_name, description from identity.users where id = $1', [svc.id]);
  assert.deepEqual(row.rows[0], { application_name: 'Reports v2', description: 'Mails the KPI report every Monday' });
});

test('tokens: create with scopes and expiry, rotate with grace, revoke', async () => {
  await page.goto(`${URL_}/service-users/${svc.id}`);
  await page.fill('#token-name', 'nightly');
  await page.fill('#token-scopes', 'users:read tokens:read');
  await page.selectOption('#token-expiry', '30');
  await page.click('#create-token');
  await page.waitForLoadState('load');
  const first = (await page.locator('#secret').innerText()).trim();
  secrets.push(first);
  const p1 = await verifies(first);
  assert.deepEqual(p1.scopes, ['users:read', 'tokens:read']);
  const days = (new Date(p1.expires_at) - Date.now()) / 86400e3;
  assert.ok(days > 29.9 && days < 30.1, `expires in ${days} days`);
  const row = page.locator('#tokens tr[data-name="nightly"][data-state="live"]');
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), /users:read, tokens:read/);
  // The list shows the display prefix and last 4, never the token.
  assert.ok(!(await page.locator('#tokens').innerText()).includes(first));
  assert.ok((await row.innerText()).includes(first.slice(-4)));

  // Rotate with one hour of grace: both work, the new one is shown once.
  await row.locator('form.rotate select').selectOption('1');
  await row.locator('form.rotate button').click();
  await page.waitForLoadState('load');
  assert.match(await page.locator('#notice').innerText(), /one more hour/);
  const second = (await page.locator('#secret').innerText()).trim();
  secrets.push(second);
  assert.notEqual(second, first);
  assert.ok(await verifies(first), 'old token works during its grace');
  assert.ok(await verifies(second), 'new token works');
  await page.screenshot({ path: `${shots}/tokens.png`, fullPage: true });

  // Revoke the new one (the confirm dialog is accepted).
  const grace = page.locator('#tokens tr[data-name="nightly"][data-state="grace"]');
  assert.equal(await grace.count(), 1, 'the old token is in its grace');
  assert.ok((await grace.innerText()).includes(first.slice(-4)));
  assert.equal(await grace.locator('form.rotate').count(), 0, 'a token in its grace is not rotated again');
  const live = page.locator('#tokens tr[data-name="nightly"][data-state="live"]');
  assert.equal(await live.count(), 1);
  assert.ok((await live.innerText()).includes(second.slice(-4)));
  await live.locator('form.revoke button').click();
  await page.waitForLoadState('load');
  assert.match(await page.locator('#notice').innerText(), /revoked/);
  assert.equal(await verifies(second), null, 'revoked token refused');
  assert.ok(await verifies(first), 'the old one is still in its grace');
  assert.equal(await page.locator('#tokens tr[data-state="revoked"]').count(), 1);

  // Rotate without grace: the old one stops at once.
  await page.fill('#token-name', 'hourly');
  await page.click('#create-token');
  await page.waitForLoadState('load');
  const hourly = (await page.locator('#secret').innerText()).trim();
  secrets.push(hourly);
  const row2 = page.locator('#tokens tr[data-name="hourly"][data-state="live"]');
  await row2.locator('form.rotate select').selectOption('0');
  await row2.locator('form.rotate button').click();
  await page.waitForLoadState('load');
  assert.match(await page.locator('#notice').innerText(), /stopped working/);
  const third = (await page.locator('#secret').innerText()).trim();
  secrets.push(third);
  assert.equal(await verifies(hourly), null, 'rotated without grace: old refused');
  assert.ok(await verifies(third));
});

test('suspend with a reason, then reactivate: takes effect at once', async () => {
  await page.goto(`${URL_}/service-users/${svc.id}`);
  await page.fill('#reason', 'key found in a public gist');
  await page.click('#suspend-button');
  await page.waitForLoadState('load');
  assert.equal(await page.locator('#status').innerText(), 'suspended');
  assert.equal(await verifies(svc.token), null, 'suspended: token refused');
  const r = await db.query('select status, status_reason from identity.users where id = $1', [svc.id]);
  assert.deepEqual(r.rows[0], { status: 'suspended', status_reason: 'key found in a public gist' });
  await page.click('#reactivate-button');
  await page.waitForLoadState('load');
  assert.equal(await page.locator('#status').innerText(), 'active');
  assert.ok(await verifies(svc.token), 'reactivated: token works');
});

test('a CSRF-less POST is refused and changes nothing', async () => {
  for (const form of [{ reason: 'no csrf' }, { reason: 'wrong csrf', csrf: 'x'.repeat(43) }]) {
    const r = await page.request.post(`${URL_}/service-users/${svc.id}/suspend`, { form });
    assert.equal(r.status(), 403);
    assert.match(await r.text(), /did not come from this console/);
  }
  const csrf = await page.locator('input[name=csrf]').first().inputValue();
  // The right token from another origin is refused too.
  const r = await page.request.post(`${URL_}/service-users/${svc.id}/suspend`, {
    form: { csrf, reason: 'cross-site' }, headers: { Origin: 'http://evil.example' } });
  assert.equal(r.status(), 403);
  assert.equal((await db.query('select status from identity.users where id = $1', [svc.id])).rows[0].status, 'active');
});

test('delete asks for the user by name', async () => {
  await page.goto(`${URL_}/service-users/${svc.id}`);
  await page.click('#delete-link');
  await page.waitForLoadState('load');
  assert.equal(await page.locator('#confirm-name').innerText(), 'reports@acme.test');
  await page.fill('#confirm', 'ingest@acme.test');
  await page.click('#delete-button');
  await page.waitForLoadState('load');
  assert.match(await page.locator('#error').innerText(), /does not name this service user/);
  assert.equal((await db.query('select count(*)::int as n from identity.users where id = $1', [svc.id])).rows[0].n, 1);
  await page.fill('#confirm', 'reports@acme.test');
  await Promise.all([page.waitForURL(`${URL_}/service-users`), page.click('#delete-button')]);
  assert.match(await page.locator('#notice').innerText(), /deleted/);
  assert.equal(await page.locator('tr[data-email="reports@acme.test"]').count(), 0);
  assert.equal((await db.query('select count(*)::int as n from identity.users where id = $1', [svc.id])).rows[0].n, 0);
  assert.equal(await verifies(svc.token), null);
  assert.equal(await verifies(secrets.at(-1)), null);
});

test('the audit page shows each action, filtered and paged', async () => {
  await page.goto(`${URL_}/audit`);
  const actions = await page.locator('#audit tbody tr[data-action]').evaluateAll((rs) => rs.map((r) => r.dataset.action));
  for (const a of ['user.deleted', 'user.reactivated', 'user.suspended', 'api_token.revoked',
                   'api_token.rotated', 'api_token.created', 'user.updated', 'service_user.created']) {
    assert.ok(actions.includes(a), `audit shows ${a}`);
  }
  assert.equal(actions[0], 'user.deleted', 'newest first');
  assert.ok(!(await page.locator('#audit').innerText()).includes('gina@globex.test'), 'no other organization');
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  // By action (a prefix), by target, by actor.
  await page.fill('#filter-action', 'api_token');
  await page.click('#filter');
  await page.waitForLoadState('load');
  const only = await page.locator('#audit tbody tr[data-action]').evaluateAll((rs) => rs.map((r) => r.dataset.action));
  assert.ok(only.length >= 4 && only.every((a) => a.startsWith('api_token.')), only.join());
  await page.goto(`${URL_}/audit?target=${svc.id}`);
  const onTarget = await page.locator('#audit tbody tr[data-action]').evaluateAll((rs) => rs.map((r) => r.dataset.action));
  assert.deepEqual([...new Set(onTarget)].sort(),
    ['service_user.created', 'user.deleted', 'user.reactivated', 'user.suspended', 'user.updated']);
  await page.goto(`${URL_}/audit?actor=${encodeURIComponent('nobody@acme.test')}`);
  assert.equal(await page.locator('#audit tbody tr[data-action]').count(), 0);
  await page.goto(`${URL_}/audit?actor=${encodeURIComponent(demo.admin_email)}`);
  const byAdmin = await page.locator('#audit tbody tr[data-action]').count();
  assert.ok(byAdmin > 0);

  // Paged: 25 a page, the next page strictly older.
  await page.goto(`${URL_}/audit`);
  const ids = (await page.locator('#audit tbody tr[data-action] td:first-child').allInnerTexts()).map(Number);
  assert.equal(ids.length, 25);
  await page.click('#older');
  await page.waitForLoadState('load');
  const older = (await page.locator('#audit tbody tr[data-action] td:first-child').allInnerTexts()).map(Number);
  assert.ok(older.length > 0 && Math.max(...older) < Math.min(...ids));
  const total = await db.query('select count(*)::int as n from identity.audit_log where organization_id = $1', [demo.acme]);
  assert.ok(ids.length + older.length <= total.rows[0].n);
});

test('credentials: usage against the credit limit, never the secret', async () => {
  await page.goto(`${URL_}/credentials`);
  const team = page.locator('#credentials tr[data-name="team key"]');
  const meter = team.locator('meter');
  assert.equal(await meter.getAttribute('max'), '50');
  assert.equal(Number(await meter.getAttribute('value')), 32.25);
  // No limit, no bar.
  assert.equal(await page.locator('#credentials tr[data-name="research"] meter').count(), 0);
  assert.match(await page.locator('#credentials tr[data-name="research"]').innerText(), /3\.20 \(no limit\)/);
  assert.match(await team.innerText(), /32\.25 of 50\.00/);
  assert.match(await team.innerText(), /…0001/);
  const html = await page.content();
  assert.ok(!html.includes('sk-or-v1-demo') && !html.includes('sk-ant-demo'));
  await page.screenshot({ path: `${shots}/credentials.png`, fullPage: true });
});

test('each request is its own transaction: two organizations through one pooled server connection', async () => {
  const c2 = await newContext();
  const p2 = await c2.newPage();
  await signIn(p2, demo.globex_admin_token);
  assert.equal(await p2.locator('#org-name').innerText(), 'Globex');
  for (let i = 0; i < 5; i++) {
    const [a, b] = await Promise.all([
      (async () => { await page.goto(`${URL_}/service-users`); return page.locator('#service-users tbody tr[data-email]').evaluateAll((rs) => rs.map((r) => r.dataset.email)); })(),
      (async () => { await p2.goto(`${URL_}/service-users`); return p2.locator('#service-users tbody tr[data-email]').evaluateAll((rs) => rs.map((r) => r.dataset.email)); })(),
    ]);
    assert.ok(a.every((e) => e.endsWith('@acme.test')) && a.length === 3, a.join());
    assert.deepEqual(b, ['etl@globex.test']);
  }
  // Suspending Globex's admin in the database signs their session out at
  // the next request.
  const gina = await db.query("select id from identity.users where email = 'gina@globex.test'");
  await db.query('select identity.suspend_user($1, $2)', [gina.rows[0].id, 'test']);
  const r = await p2.goto(`${URL_}/service-users`);
  assert.equal(r.status(), 401);
  await p2.goto(`${URL_}/service-users`);
  assert.equal(new URL(p2.url()).pathname, '/login');
  await db.query('select identity.reactivate_user($1)', [gina.rows[0].id]);
  await c2.close();
});

test('sign out ends the session; its cookie is worth nothing afterwards', async () => {
  const cookie = (await ctx.cookies()).find((k) => k.name === 'identity_console');
  await page.goto(`${URL_}/service-users`);
  await Promise.all([page.waitForURL(`${URL_}/login`), page.click('#sign-out')]);
  await ctx.addCookies([cookie]);
  await page.goto(`${URL_}/audit`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.screenshot({ path: `${shots}/login.png` });
});

test('no token in any URL or in the console log', async () => {
  for (const s of secrets) {
    assert.ok(!urls.some((u) => u.includes(s)), 'token in a URL');
  }
  const log = readFileSync(process.env.CONSOLE_LOG, 'utf8');
  assert.ok(log.includes('POST /login'), 'the log is the console\'s');
  for (const s of secrets) assert.ok(!log.includes(s), 'token in the console log');
});
