/** The self-service listener (config.selfService) over a real socket: it serves the sign-in form, /me and
 *  /me/password to an account holder, shows the configured public address (admin.publicTspHost) in the
 *  client settings, and answers 404 for everything else (admin pages, /api/v1, the API reference, /metrics,
 *  /healthz), even to an admin. The admin listener keeps serving everything. Without a configured address,
 *  /me says so instead of guessing from the Host header. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { parseConfig } from '../../src/config/schema.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { login } from './session.js';

const brokers: TestBroker[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

function cookieOf(r: Response, name: string): string | undefined {
  for (const c of r.headers.getSetCookie()) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c);
    if (m) return m[1];
  }
  return undefined;
}

/** Signs in through the form at base; returns the session cookie header. */
async function signIn(base: string, username: string, password: string): Promise<string> {
  const form = await fetch(`${base}/login`);
  assert.equal(form.status, 200);
  const csrfCookie = cookieOf(form, 'tspb_login_csrf');
  const field = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  assert.ok(csrfCookie && field);
  const r = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: `tspb_login_csrf=${csrfCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: field, username, password, next: '' }).toString(),
  });
  assert.equal(r.status, 303);
  const session = cookieOf(r, 'tspb_session');
  assert.ok(session);
  return `tspb_session=${session}`;
}

test('the self-service listener serves /me with the configured address and nothing of the admin surface', async () => {
  const b = await startTestBroker({
    admin: { enabled: true, port: 0, publicTspHost: 'tsp.example.net' },
    selfService: { enabled: true, address: '127.0.0.1', port: 0 },
  });
  brokers.push(b);
  assert.ok(b.admin && b.selfService);
  await b.addUser('holder', 'holder-password');
  await b.addUser('root', 'root-password', 'admin');
  const self = `http://127.0.0.1:${b.selfService.port}`;
  const admin = `http://127.0.0.1:${b.admin.port}`;

  const cookie = await signIn(self, 'holder', 'holder-password');
  const me = await fetch(`${self}/me`, { headers: { cookie } });
  assert.equal(me.status, 200);
  const body = await me.text();
  assert.match(body, new RegExp(`server=tsp\\.example\\.net:${b.ports.udp}`), 'the configured address, not Host');
  assert.match(body, /userid=holder/);
  assert.doesNotMatch(body, /href="\/accounts"/, 'no admin navigation');
  for (const asset of ['/assets/app.css', '/assets/app.js', '/favicon.ico'])
    assert.equal((await fetch(`${self}${asset}`)).status, 200, `${asset} is served`);
  const home = await fetch(`${self}/`, { headers: { cookie }, redirect: 'manual' });
  assert.equal(home.status, 303);
  assert.equal(home.headers.get('location'), '/me');

  // an admin's session changes nothing: the admin surface is not there
  const rootCookie = await signIn(self, 'root', 'root-password');
  for (const path of [
    '/accounts',
    '/tunnels',
    '/audit',
    '/tokens',
    '/dashboard/live',
    '/api/v1/accounts',
    '/api/v1/me',
    '/api/v1/openapi.json',
    '/api/v1/docs',
    '/metrics',
    '/healthz',
    '/assets/../accounts',
    '/%61ccounts',
  ]) {
    for (const c of [cookie, rootCookie]) {
      const r = await fetch(`${self}${path}`, { headers: { cookie: c }, redirect: 'manual' });
      assert.equal(r.status, 404, `${path} is not served on the self-service listener`);
    }
  }
  const post = await fetch(`${self}/accounts`, { method: 'POST', headers: { cookie: rootCookie } });
  assert.equal(post.status, 404);
  const rootMe = await (await fetch(`${self}/me`, { headers: { cookie: rootCookie } })).text();
  assert.doesNotMatch(rootMe, /href="\/accounts"/, 'no admin navigation for an admin either');

  // the admin listener still serves everything, with the same sessions
  assert.equal((await fetch(`${admin}/accounts`, { headers: { cookie: rootCookie } })).status, 200);
  assert.equal((await fetch(`${admin}/metrics`)).status, 200);
});

test('without a configured public address /me says so instead of using the Host header', async () => {
  const b = await startTestBroker();
  brokers.push(b);
  await b.addUser('holder', 'holder-password');
  // TSP on every address and no serverIpv4 or admin.publicTspHost (inject: no socket is opened)
  const config = { ...b.config, listen: { ...b.config.listen, address: '0.0.0.0' } };
  const app = await buildAdminApp({ ...b, config });
  try {
    const { cookie } = await login(app, 'holder', 'holder-password');
    const r = await app.inject({ method: 'GET', url: '/me', headers: { cookie, host: 'admin.internal:8080' } });
    assert.equal(r.statusCode, 200);
    assert.match(r.body, /server=BROKER-ADDRESS/);
    assert.match(r.body, /id="server-unknown"/);
    assert.doesNotMatch(r.body, /server=admin\.internal/);
  } finally {
    await app.close();
  }
});

test('the new keys are validated, and an error names the key', () => {
  assert.throws(() => parseConfig({ admin: { publicTspHost: 'not a host' } }), /admin\.publicTspHost: must be a host/);
  assert.throws(() => parseConfig({ selfService: { enabled: true, port: 8080 } }), /selfService\.port: must differ/);
  assert.throws(() => parseConfig({ selfService: { bogus: 1 } }), /selfService\.bogus: unknown key/);
  assert.equal(parseConfig({ admin: { publicTspHost: '2001:db8::1' } }).admin.publicTspHost, '2001:db8::1');
  assert.equal(parseConfig({}).selfService.enabled, false);
});
