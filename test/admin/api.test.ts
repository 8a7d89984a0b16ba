/** The REST API through fastify's inject (no socket) against a real broker (real UDP/TCP, SQLite file), and a
 *  few requests over a real socket. Every endpoint in the OpenAPI document is checked for 401 without a
 *  credential and 403 for a non-admin session; bad input is 400 API_BAD_REQUEST; cookie-authenticated writes
 *  without the CSRF header are 403 API_CSRF. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { eventually } from '../helpers/clients.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { login, postLogin, type WebLogin } from './session.js';
import { digestTunnelOverUdp } from './tsp-session.js';

let b: TestBroker;
let app: FastifyInstance;
let admin: WebLogin;
let user: WebLogin;
let token: string;

before(async () => {
  b = await startTestBroker();
  app = await buildAdminApp(b);
  await b.addUser('root', 'root-password', 'admin');
  await b.addUser('alice', 'alice-password');
  admin = await login(app, 'root', 'root-password');
  user = await login(app, 'alice', 'alice-password');
  const r = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    payload: { name: 'ci' },
  });
  assert.equal(r.statusCode, 201, r.body);
  token = r.json<{ token: string }>().token;
});
after(async () => {
  await app?.close();
  await b?.stop();
});

function api(method: InjectOptions['method'], url: string, payload?: object, headers: Record<string, string> = {}) {
  return app.inject({
    method,
    url: `/api/v1${url}`,
    headers: { authorization: `Bearer ${token}`, ...headers },
    ...(payload ? { payload } : {}),
  });
}

function assertError(r: { statusCode: number; json: () => unknown }, status: number, code: string): void {
  assert.equal(r.statusCode, status, JSON.stringify(r.json()));
  const e = r.json() as { code: string; message: string };
  assert.equal(e.code, code);
  assert.equal(typeof e.message, 'string');
}

interface OpenApi {
  paths: Record<string, Record<string, { security: unknown[]; 'x-role'?: string; responses: Record<string, unknown> }>>;
}

async function operations(): Promise<{ method: string; url: string; role: string }[]> {
  const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<OpenApi>();
  const ops = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods)) {
      const url = path.replace('{username}', 'alice').replace('{id}', '1').replace('{name}', 'ci');
      ops.push({ method: method.toUpperCase(), url, role: op['x-role'] ?? (op.security.length ? 'any' : 'public') });
    }
  return ops;
}

test('the OpenAPI document lists every route with its schemas', async () => {
  const r = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
  assert.equal(r.statusCode, 200);
  const doc = r.json<OpenApi & { openapi: string }>();
  assert.match(doc.openapi, /^3\./);
  const want = [
    'get /me',
    'put /me/password',
    'get /me/reverse-dns',
    'put /me/reverse-dns',
    'get /accounts',
    'post /accounts',
    'get /accounts/{username}',
    'put /accounts/{username}/password',
    'post /accounts/{username}/disable',
    'post /accounts/{username}/enable',
    'put /accounts/{username}/limits',
    'get /accounts/{username}/reverse-dns',
    'put /accounts/{username}/reverse-dns',
    'delete /accounts/{username}',
    'get /tunnels',
    'get /tunnels/{id}',
    'get /tunnels/{id}/traffic',
    'post /tunnels/{id}/kill',
    'get /pools',
    'get /stats',
    'get /audit',
    'get /tokens',
    'post /tokens',
    'delete /tokens/{name}',
    'get /accounts/{username}/static-tunnel',
    'post /accounts/{username}/static-tunnel',
    'put /accounts/{username}/static-tunnel/endpoint',
    'post /accounts/{username}/static-tunnel/update-key',
    'delete /accounts/{username}/static-tunnel',
    'get /me/static-tunnel',
    'post /me/static-tunnel',
    'put /me/static-tunnel/endpoint',
    'post /me/static-tunnel/update-key',
    'delete /me/static-tunnel',
    'get /nodes',
    'post /nodes/{name}/drain',
    'post /nodes/{name}/undrain',
  ];
  const have = Object.entries(doc.paths).flatMap(([p, ms]) => Object.keys(ms).map((m) => `${m} ${p}`));
  assert.deepEqual(have.sort(), want.sort());
  for (const [p, ms] of Object.entries(doc.paths))
    for (const [m, op] of Object.entries(ms)) assert.ok(op.responses['401'], `${m} ${p} documents 401`);
});

test('every endpoint needs a credential (401 API_UNAUTHORIZED) and a bad token is refused', async () => {
  const ops = await operations();
  assert.ok(ops.length >= 19);
  for (const op of ops) {
    const r = await app.inject({ method: op.method as InjectOptions['method'], url: `/api/v1${op.url}`, payload: {} });
    assertError(r, 401, 'API_UNAUTHORIZED');
    const bad = await app.inject({
      method: op.method as InjectOptions['method'],
      url: `/api/v1${op.url}`,
      headers: { authorization: 'Bearer tspb_not-a-token' },
    });
    assertError(bad, 401, 'API_UNAUTHORIZED');
  }
});

test('a non-admin session gets 403 API_FORBIDDEN on every admin endpoint, but may use /me', async () => {
  for (const op of await operations()) {
    if (op.role !== 'admin') continue;
    const r = await app.inject({
      method: op.method as InjectOptions['method'],
      url: `/api/v1${op.url}`,
      headers: { cookie: user.cookie, 'x-csrf-token': user.csrf },
      payload: {},
    });
    assertError(r, 403, 'API_FORBIDDEN');
  }
  const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: user.cookie } });
  assert.equal(me.statusCode, 200);
  assert.equal(me.json<{ account: { username: string } }>().account.username, 'alice');
});

test('cookie-authenticated writes need the CSRF header; bearer tokens do not', async () => {
  const payload = { username: 'csrf-victim', password: 'long-enough-1' };
  const without = await app.inject({
    method: 'POST',
    url: '/api/v1/accounts',
    headers: { cookie: admin.cookie },
    payload,
  });
  assertError(without, 403, 'API_CSRF');
  const wrong = await app.inject({
    method: 'POST',
    url: '/api/v1/accounts',
    headers: { cookie: admin.cookie, 'x-csrf-token': user.csrf },
    payload,
  });
  assertError(wrong, 403, 'API_CSRF');
  assert.equal((await api('GET', '/accounts/csrf-victim')).statusCode, 404, 'nothing was created');
  const ok = await app.inject({
    method: 'POST',
    url: '/api/v1/accounts',
    headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    payload,
  });
  assert.equal(ok.statusCode, 201, ok.body);
  // web forms: a POST without _csrf is refused with a 403 page and changes nothing
  const form = await app.inject({
    method: 'POST',
    url: '/accounts/csrf-victim/delete',
    headers: { cookie: admin.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: '',
  });
  assert.equal(form.statusCode, 403);
  assert.match(form.body, /API_CSRF/);
  assert.equal((await api('GET', '/accounts/csrf-victim')).statusCode, 200);
  const formOk = await app.inject({
    method: 'POST',
    url: '/accounts/csrf-victim/delete',
    headers: { cookie: admin.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: admin.csrf }).toString(),
  });
  assert.equal(formOk.statusCode, 303);
  assert.equal((await api('GET', '/accounts/csrf-victim')).statusCode, 404);
});

test('accounts: create, list with search and paging, show, password, disable/enable, limits, delete', async () => {
  const created = await api('POST', '/accounts', {
    username: 'bob',
    password: 'bob-password',
    limits: { tunnelTypes: ['v6udpv4'] },
  });
  assert.equal(created.statusCode, 201, created.body);
  const acc = created.json<Record<string, unknown>>();
  assert.equal(acc.username, 'bob');
  assert.equal(acc.role, 'user');
  assert.ok(!('passwordHash' in acc) && !('digestHa1' in acc), 'no secrets in replies');
  assertError(await api('POST', '/accounts', { username: 'bob', password: 'bob-password' }), 409, 'STORE_CONFLICT');

  for (let i = 0; i < 5; i++)
    assert.equal((await api('POST', '/accounts', { username: `page${i}`, password: 'page-password' })).statusCode, 201);
  const page1 = await api('GET', '/accounts?search=page&limit=2&offset=0');
  assert.equal(page1.statusCode, 200);
  const p1 = page1.json<{ items: { username: string }[]; total: number }>();
  assert.equal(p1.total, 5);
  assert.deepEqual(
    p1.items.map((a) => a.username),
    ['page0', 'page1'],
  );
  const p3 = (await api('GET', '/accounts?search=PAGE&limit=2&offset=4')).json<{ items: { username: string }[] }>();
  assert.deepEqual(
    p3.items.map((a) => a.username),
    ['page4'],
  );

  assert.equal((await api('GET', '/accounts/bob')).json<{ id: number }>().id, acc.id);
  assertError(await api('GET', '/accounts/nobody'), 404, 'STORE_NOT_FOUND');

  const before = await b.store.getAccountSecrets('bob');
  assert.equal((await api('PUT', '/accounts/bob/password', { password: 'new-bob-password' })).statusCode, 204);
  const afterChange = await b.store.getAccountSecrets('bob');
  assert.notEqual(afterChange!.passwordHash, before!.passwordHash, 'argon2id hash changed');
  assert.notEqual(afterChange!.digestHa1, before!.digestHa1, 'DIGEST-MD5 secret changed');
  assert.match(afterChange!.passwordHash, /^\$argon2id\$/);

  const disabled = await api('POST', '/accounts/bob/disable');
  assert.equal(disabled.statusCode, 200);
  assert.equal(disabled.json<{ disabled: boolean }>().disabled, true);
  assert.equal((await api('POST', '/accounts/bob/enable')).json<{ disabled: boolean }>().disabled, false);

  const limits = await api('PUT', '/accounts/bob/limits', {
    tunnelTypes: ['v6v4'],
    minPrefixLen: 48,
    maxPrefixLen: 56,
  });
  assert.equal(limits.statusCode, 200, limits.body);
  assert.deepEqual(limits.json<{ limits: unknown }>().limits, {
    tunnelTypes: ['v6v4'],
    minPrefixLen: 48,
    maxPrefixLen: 56,
  });

  assert.equal((await api('DELETE', '/accounts/bob')).statusCode, 204);
  assertError(await api('GET', '/accounts/bob'), 404, 'STORE_NOT_FOUND');
  assertError(await api('DELETE', '/accounts/bob'), 404, 'STORE_NOT_FOUND');
});

test('bad input is rejected with 400 API_BAD_REQUEST', async () => {
  const cases: [InjectOptions['method'], string, object | undefined][] = [
    ['POST', '/accounts', { username: 'x' }], // no password
    ['POST', '/accounts', { username: 'shorty', password: 'short' }], // too short
    ['POST', '/accounts', { username: 'bad name!', password: 'long-enough-1' }], // username alphabet (service rule)
    ['POST', '/accounts', { username: 'extra', password: 'long-enough-1', isRoot: true }], // unknown property
    ['POST', '/accounts', { username: 'role', password: 'long-enough-1', role: 'root' }],
    ['PUT', '/accounts/alice/limits', { minPrefixLen: 8 }],
    ['PUT', '/accounts/alice/limits', { minPrefixLen: 60, maxPrefixLen: 50 }], // min > max
    ['PUT', '/accounts/alice/limits', { tunnelTypes: ['v6anyv4'] }], // a wish, never a tunnel's type
    ['PUT', '/accounts/alice/password', { password: 'a\nb-long-enough' }], // line break
    ['GET', '/accounts?limit=5000', undefined],
    ['GET', '/accounts?limit=abc', undefined],
    ['GET', '/tunnels?state=zombie', undefined],
    ['GET', '/tunnels/0', undefined],
    ['GET', '/tunnels/abc', undefined],
    ['GET', '/audit?offset=-1', undefined],
    ['POST', '/tokens', { name: '' }],
    ['POST', '/tokens', { name: 'has space' }],
  ];
  for (const [method, url, payload] of cases) assertError(await api(method, url, payload), 400, 'API_BAD_REQUEST');
  const notJson = await app.inject({
    method: 'POST',
    url: '/api/v1/accounts',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: '{"username":',
  });
  assertError(notJson, 400, 'API_BAD_REQUEST');
  assertError(await api('GET', '/no-such-thing'), 404, 'API_NOT_FOUND');
});

test('tunnels: a real DIGEST-MD5 session shows up live with counters, can be filtered, shown and killed', async (t) => {
  await b.addUser('carol', 'carol-password');
  const s = await digestTunnelOverUdp(b.ports.udp, 'carol', 'carol-password');
  t.after(() => s.udp.close());
  assert.equal(s.result, 'established');

  const live = (await api('GET', '/tunnels')).json<{ items: Record<string, unknown>[]; total: number }>();
  const mine = live.items.find((x) => x.username === 'carol');
  assert.ok(mine, 'carol has a live tunnel');
  assert.equal(mine.type, 'v6udpv4');
  assert.equal(mine.state, 'established');
  assert.equal(typeof mine.rxBytes, 'number');
  assert.equal((await api('GET', '/tunnels?username=carol&type=v6v4')).json<{ total: number }>().total, 0);
  assert.equal((await api('GET', '/tunnels?username=carol&type=v6udpv4')).json<{ total: number }>().total, 1);
  assertError(await api('GET', '/tunnels?username=ghost'), 404, 'STORE_NOT_FOUND');

  const shown = await api('GET', `/tunnels/${String(mine.id)}`);
  assert.equal(shown.statusCode, 200);
  assert.equal(shown.json<{ live: boolean }>().live, true);

  assert.equal((await api('POST', `/tunnels/${String(mine.id)}/kill`)).statusCode, 204);
  assert.equal((await api('GET', '/tunnels?username=carol')).json<{ total: number }>().total, 0);
  const ended = (await api('GET', `/tunnels/${String(mine.id)}`)).json<{
    live: boolean;
    state: string;
    endReason: string;
  }>();
  assert.deepEqual([ended.live, ended.state, ended.endReason], [false, 'ended', 'admin']);
  assertError(await api('POST', `/tunnels/${String(mine.id)}/kill`), 404, 'STORE_NOT_FOUND');
  assertError(await api('GET', '/tunnels/999999'), 404, 'STORE_NOT_FOUND');
  const all = (await api('GET', '/tunnels?state=all&username=carol')).json<{ total: number }>();
  assert.equal(all.total, 1);

  const audit = (await api('GET', '/audit?action=tunnel.kill')).json<{ items: { actor: string; target: string }[] }>();
  assert.equal(audit.items[0]?.actor, 'token:ci');
  assert.equal(audit.items[0]?.target, String(mine.id));
});

test('disabling an account ends its live tunnels', async (t) => {
  await b.addUser('dave', 'dave-password');
  const s = await digestTunnelOverUdp(b.ports.udp, 'dave', 'dave-password');
  t.after(() => s.udp.close());
  assert.equal((await api('GET', '/tunnels?username=dave')).json<{ total: number }>().total, 1);
  assert.equal((await api('POST', '/accounts/dave/disable')).statusCode, 200);
  assert.ok(
    await eventually(async () => (await api('GET', '/tunnels?username=dave')).json<{ total: number }>().total === 0),
  );
  const ended = (await api('GET', '/tunnels?state=ended&username=dave')).json<{ items: { endReason: string }[] }>();
  assert.equal(ended.items[0]?.endReason, 'account_disabled');
  const again = await digestTunnelOverUdp(b.ports.udp, 'dave', 'dave-password');
  again.udp.close();
  assert.match(again.result, /^300/, 'a disabled account cannot authenticate');
});

test('deleting an account ends its live tunnels as account_deleted, the reason the CLI delete gives too', async (t) => {
  await b.addUser('erin', 'erin-password');
  const s = await digestTunnelOverUdp(b.ports.udp, 'erin', 'erin-password');
  t.after(() => s.udp.close());
  const live = (await api('GET', '/tunnels?username=erin')).json<{ items: { id: number }[] }>().items;
  assert.equal(live.length, 1);
  assert.equal((await api('DELETE', '/accounts/erin')).statusCode, 204);
  const ended = (await api('GET', `/tunnels/${String(live[0]!.id)}`)).json<{ live: boolean; endReason: string }>();
  assert.deepEqual([ended.live, ended.endReason], [false, 'account_deleted']);
});

test('pools, stats and audit', async () => {
  const pools = (await api('GET', '/pools')).json<{ pool: string; poolPrefix: string; blocks: number }[]>();
  const link = pools.find((p) => p.pool === 'link');
  assert.equal(link?.poolPrefix, '2001:db8:f00::/48');
  assert.ok(link.blocks >= 1, 'tunnels allocated link blocks');
  const stats = (await api('GET', '/stats')).json<{
    liveTunnels: number;
    byType: Record<string, number>;
    traffic: unknown[];
  }>();
  assert.equal(typeof stats.liveTunnels, 'number');
  assert.deepEqual(Object.keys(stats.byType).sort(), ['v4v6', 'v6udpv4', 'v6v4']);
  assert.ok(stats.traffic.length >= 1);
  const audit = (await api('GET', '/audit?limit=1000')).json<{ items: { action: string }[]; total: number }>();
  const actions = new Set(audit.items.map((e) => e.action));
  for (const a of [
    'auth.login',
    'token.create',
    'account.create',
    'account.passwd',
    'account.disable',
    'account.limits',
    'account.delete',
    'tunnel.kill',
  ])
    assert.ok(actions.has(a), `audit has ${a}`);
  const paged = (await api('GET', '/audit?limit=2&offset=1')).json<{ items: unknown[]; total: number }>();
  assert.equal(paged.items.length, 2);
  assert.equal(paged.total, audit.total);
});

test('tokens: list never shows values, revoked tokens stop working, both audited', async () => {
  const created = await api('POST', '/tokens', { name: 'temp' });
  assert.equal(created.statusCode, 201);
  const temp = created.json<{ token: string; name: string }>();
  assert.match(temp.token, /^tspb_[A-Za-z0-9_-]{43}$/);
  assertError(await api('POST', '/tokens', { name: 'temp' }), 409, 'STORE_CONFLICT');
  const list = await api('GET', '/tokens');
  assert.ok(!list.body.includes(temp.token), 'token values are never listed');
  assert.deepEqual(
    list.json<{ name: string }[]>().map((x) => x.name),
    ['ci', 'temp'],
  );
  const withTemp = await app.inject({
    method: 'GET',
    url: '/api/v1/pools',
    headers: { authorization: `Bearer ${temp.token}` },
  });
  assert.equal(withTemp.statusCode, 200);
  assert.equal((await api('DELETE', '/tokens/temp')).statusCode, 204);
  assertError(await api('DELETE', '/tokens/temp'), 404, 'STORE_NOT_FOUND');
  const revoked = await app.inject({
    method: 'GET',
    url: '/api/v1/pools',
    headers: { authorization: `Bearer ${temp.token}` },
  });
  assertError(revoked, 401, 'API_UNAUTHORIZED');
  const audit = (await api('GET', '/audit?action=token.revoke')).json<{ items: { target: string }[] }>();
  assert.equal(audit.items[0]?.target, 'temp');
});

test('self-service password change checks the current password', async () => {
  await b.addUser('erin', 'erin-password');
  const erin = await login(app, 'erin', 'erin-password');
  const h = { cookie: erin.cookie, 'x-csrf-token': erin.csrf };
  const wrong = await app.inject({
    method: 'PUT',
    url: '/api/v1/me/password',
    headers: h,
    payload: { currentPassword: 'nope-nope', newPassword: 'erin-new-password' },
  });
  assertError(wrong, 401, 'AUTH_FAILED');
  const ok = await app.inject({
    method: 'PUT',
    url: '/api/v1/me/password',
    headers: h,
    payload: { currentPassword: 'erin-password', newPassword: 'erin-new-password' },
  });
  assert.equal(ok.statusCode, 204, ok.body);
  const s = await digestTunnelOverUdp(b.ports.udp, 'erin', 'erin-new-password');
  s.udp.close();
  assert.equal(s.result, 'established', 'DIGEST-MD5 works with the new password');
  const tokenCannot = await api('PUT', '/me/password', { currentPassword: 'x', newPassword: 'long-enough-1' });
  assertError(tokenCannot, 403, 'API_FORBIDDEN');
});

test('sign-in is throttled per username: lockout even with the right password', async () => {
  await b.addUser('frank', 'frank-password');
  for (let i = 0; i < 5; i++) assert.equal((await postLogin(app, 'frank', 'wrong-password')).statusCode, 401);
  const locked = await postLogin(app, 'frank', 'frank-password');
  assert.equal(locked.statusCode, 429);
  assert.match(locked.body, /too many failed sign-ins/);
  const audit = (await api('GET', '/audit?action=auth.fail&limit=1000')).json<{ items: { target: string }[] }>();
  assert.equal(audit.items.filter((e) => e.target === 'frank').length, 5);
});

test('a logged-out session is gone; sessions survive only in the store', async () => {
  await b.addUser('gina', 'gina-password');
  const gina = await login(app, 'gina', 'gina-password');
  const out = await app.inject({
    method: 'POST',
    url: '/logout',
    headers: { cookie: gina.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: gina.csrf }).toString(),
  });
  assert.equal(out.statusCode, 303);
  assertError(
    await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: gina.cookie } }),
    401,
    'API_UNAUTHORIZED',
  );
  // a second app on the same store (a restart) still knows the admin's session
  const app2 = await buildAdminApp(b);
  try {
    const me = await app2.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: admin.cookie } });
    assert.equal(me.statusCode, 200);
  } finally {
    await app2.close();
  }
});

test('over a real socket: JSON errors, token auth, session cookie attributes', async (t) => {
  const real = await startTestBroker({ admin: { enabled: true, port: 0 } });
  t.after(() => real.stop());
  assert.ok(real.admin && real.admin.port > 0);
  const base = `http://127.0.0.1:${real.admin.port}`;
  const anon = await fetch(`${base}/api/v1/accounts`);
  assert.equal(anon.status, 401);
  assert.match(anon.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(((await anon.json()) as { code: string }).code, 'API_UNAUTHORIZED');
  assert.equal(anon.headers.get('x-frame-options'), 'DENY');
  assert.equal(anon.headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP');

  const { TokenService } = await import('../../src/admin/tokens.js');
  const { token: tk } = await new TokenService(real.store).create('test', 'socket');
  const auth = { authorization: `Bearer ${tk}`, 'content-type': 'application/json' };
  const created = await fetch(`${base}/api/v1/accounts`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ username: 'sock', password: 'sock-password', role: 'admin' }),
  });
  assert.equal(created.status, 201);
  const bad = await fetch(`${base}/api/v1/accounts`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ username: 'sock2' }),
  });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'API_BAD_REQUEST');

  const form = await fetch(`${base}/login`);
  const loginCookie = /tspb_login_csrf=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')?.[1];
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  const signin = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: `tspb_login_csrf=${loginCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      _csrf: csrf!,
      username: 'sock',
      password: 'sock-password',
      next: '/tunnels',
    }).toString(),
  });
  assert.equal(signin.status, 303);
  assert.equal(signin.headers.get('location'), '/tunnels');
  const setCookie = signin.headers.getSetCookie().find((c) => c.startsWith('tspb_session='));
  assert.ok(setCookie);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=(Lax|Strict)/);
  assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP: no Secure attribute');
  const page = await fetch(`${base}/tunnels`, { headers: { cookie: setCookie.split(';')[0]! } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<h1>Tunnels<\/h1>/);
  assert.equal(page.headers.get('strict-transport-security'), null);
});
