/** API tokens with an expiry: made through the API or the UI with a number of days, refused with 401 once that
 *  time has passed; and every token's last use, recorded at most once a minute, shown in the API list and on
 *  the UI's tokens page. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { ManualClock } from '../../src/clock.js';
import { login } from './session.js';

const DAY = 86_400_000;
let b: TestBroker;
let app: FastifyInstance;
let ops: string;
const clock = new ManualClock(Date.UTC(2030, 0, 1, 12, 0, 0));

interface TokenRow {
  name: string;
  lastUsedAt: number | null;
  expiresAt: number | null;
}

before(async () => {
  b = await startTestBroker();
  app = await buildAdminApp({ ...b, clock });
  await b.addUser('root', 'root-password', 'admin');
  const admin = await login(app, 'root', 'root-password');
  const r = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    payload: { name: 'ops' },
  });
  ops = r.json<{ token: string }>().token;
});
after(async () => {
  await app?.close();
  await b?.stop();
});

/** The tests move the clock by days: web sessions end after 12 hours, so the API calls use a token without expiry. */
const asAdmin = () => ({ authorization: `Bearer ${ops}` });
const withToken = (token: string) =>
  app.inject({ method: 'GET', url: '/api/v1/pools', headers: { authorization: `Bearer ${token}` } });
async function listed(name: string): Promise<TokenRow | undefined> {
  const r = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: asAdmin() });
  assert.equal(r.statusCode, 200);
  return r.json<TokenRow[]>().find((t) => t.name === name);
}

test('API: a token made with expiresInDays works until then and is refused with 401 afterwards', async () => {
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: asAdmin(),
    payload: { name: 'short', expiresInDays: 2 },
  });
  assert.equal(created.statusCode, 201, created.body);
  const t = created.json<TokenRow & { token: string }>();
  assert.equal(t.expiresAt, clock.now() + 2 * DAY);
  const forever = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: asAdmin(),
    payload: { name: 'long' },
  });
  assert.equal(forever.json<TokenRow>().expiresAt, null, 'no expiry unless asked');
  const longToken = forever.json<{ token: string }>().token;

  assert.equal((await withToken(t.token)).statusCode, 200);
  clock.advance(2 * DAY - 1000);
  assert.equal((await withToken(t.token)).statusCode, 200, 'still valid a second before');
  clock.advance(1000);
  const refused = await withToken(t.token);
  assert.equal(refused.statusCode, 401);
  assert.deepEqual(refused.json(), { code: 'API_UNAUTHORIZED', message: 'expired API token' });
  assert.equal((await withToken(longToken)).statusCode, 200, 'a token without expiry still works');
  assert.equal((await listed('short'))?.expiresAt, t.expiresAt, 'an expired token is still listed until revoked');

  for (const bad of [0, -1, 3651, 1.5, 'ten'])
    assert.equal(
      (
        await app.inject({
          method: 'POST',
          url: '/api/v1/tokens',
          headers: asAdmin(),
          payload: { name: `bad-${String(bad)}`, expiresInDays: bad },
        })
      ).statusCode,
      400,
      `expiresInDays ${String(bad)}`,
    );
});

test('the last use is recorded at most once a minute and shown in the API list and the UI', async () => {
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: asAdmin(),
    payload: { name: 'used' },
  });
  const token = created.json<{ token: string }>().token;
  assert.equal((await listed('used'))?.lastUsedAt, null, 'never used yet');
  const first = clock.now();
  await withToken(token);
  assert.equal((await listed('used'))?.lastUsedAt, first);
  clock.advance(30_000);
  await withToken(token);
  assert.equal((await listed('used'))?.lastUsedAt, first, 'not rewritten within a minute');
  clock.advance(31_000);
  await withToken(token);
  assert.equal((await listed('used'))?.lastUsedAt, first + 61_000);

  const admin = await login(app, 'root', 'root-password');
  const page = await app.inject({ method: 'GET', url: '/tokens', headers: { cookie: admin.cookie } });
  assert.equal(page.statusCode, 200);
  const row = /<tr>\s*<td>used<\/td>[\s\S]*?<\/tr>/.exec(page.body)?.[0] ?? '';
  assert.ok(row.includes(new Date(first + 61_000).toISOString().replace('T', ' ').slice(0, 19)), row);
  assert.match(row, /never/, 'no expiry');
  const shortRow = /<tr>\s*<td>short<\/td>[\s\S]*?<\/tr>/.exec(page.body)?.[0] ?? '';
  assert.match(shortRow, /expired/);
});

test('UI: the token form takes an expiry in days', async () => {
  const admin = await login(app, 'root', 'root-password');
  const r = await app.inject({
    method: 'POST',
    url: '/tokens',
    headers: { cookie: admin.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: admin.csrf, name: 'from-ui', expiresInDays: '30' }).toString(),
  });
  assert.equal(r.statusCode, 200, r.body);
  const token = /<pre id="new-token">([^<]+)<\/pre>/.exec(r.body)?.[1];
  assert.ok(token);
  assert.equal((await listed('from-ui'))?.expiresAt, clock.now() + 30 * DAY);
  assert.match(r.body, /name="expiresInDays"/);
  clock.advance(30 * DAY);
  assert.equal((await withToken(token)).statusCode, 401);

  const again = await login(app, 'root', 'root-password');
  const bad = await app.inject({
    method: 'POST',
    url: '/tokens',
    headers: { cookie: again.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: again.csrf, name: 'bad-ui', expiresInDays: 'soon' }).toString(),
  });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.body, /whole number of days/);
});
