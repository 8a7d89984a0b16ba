/** What an unauthenticated client can do to the sign-in form: it cannot choose the form's CSRF token itself
 *  (the server issues and checks it), and failed sign-ins, however many and with whatever username, add only a
 *  bounded number of small audit rows per source address and minute; the rows not written are counted in
 *  tsp_audit_suppressed_total. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { ManualClock } from '../../src/clock.js';
import { parsePrometheus } from './prometheus.js';

let b: TestBroker;
let app: FastifyInstance;
const clock = new ManualClock(Date.now());

before(async () => {
  b = await startTestBroker();
  app = await buildAdminApp({ ...b, clock });
  await b.addUser('root', 'root-password', 'admin');
});
after(async () => {
  await app?.close();
  await b?.stop();
});

const FORM = 'application/x-www-form-urlencoded';

/** The sign-in form's token: the cookie the server set and the hidden field it rendered. */
async function loginForm(): Promise<{ cookie: string; field: string }> {
  const r = await app.inject({ method: 'GET', url: '/login' });
  assert.equal(r.statusCode, 200);
  const cookie = /tspb_login_csrf=([^;]+)/.exec([r.headers['set-cookie'] ?? []].flat().join(', '))?.[1];
  const field = /name="_csrf" value="([^"]+)"/.exec(r.body)?.[1];
  assert.ok(cookie && field);
  return { cookie: decodeURIComponent(cookie), field };
}

function signIn(
  csrf: { cookie: string; field: string },
  username: string,
  password: string,
  remoteAddress = '127.0.0.1',
) {
  return app.inject({
    method: 'POST',
    url: '/login',
    remoteAddress,
    headers: { cookie: `tspb_login_csrf=${encodeURIComponent(csrf.cookie)}`, 'content-type': FORM },
    payload: new URLSearchParams({ _csrf: csrf.field, username, password, next: '' }).toString(),
  });
}

test('the sign-in CSRF token is issued by the server: a value the client chose is refused 403', async () => {
  // the right password, but a cookie and field the client made up (matching each other)
  for (const chosen of [
    'abc',
    'x'.repeat(43),
    'AAAAAAAAAAAAAAAAAAAAAA.zzzzzzzz.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  ]) {
    const r = await signIn({ cookie: chosen, field: chosen }, 'root', 'root-password');
    assert.equal(r.statusCode, 403, `self-chosen token ${chosen.slice(0, 10)}…`);
    assert.match(r.body, /API_CSRF/);
    assert.equal(r.headers['set-cookie'], undefined, 'no session');
  }
  // a token the server issued, altered in its random part, or presented without its cookie twin
  const real = await loginForm();
  const altered = (real.cookie[0] === 'A' ? 'B' : 'A') + real.cookie.slice(1);
  assert.equal((await signIn({ cookie: altered, field: altered }, 'root', 'root-password')).statusCode, 403);
  const other = await loginForm();
  assert.equal((await signIn({ cookie: real.cookie, field: other.field }, 'root', 'root-password')).statusCode, 403);
  // an issued token expires with its cookie (an hour)
  const old = await loginForm();
  clock.advance(3600_000 + 1000);
  assert.equal((await signIn(old, 'root', 'root-password')).statusCode, 403);
  // the real thing works
  const ok = await signIn(await loginForm(), 'root', 'root-password');
  assert.equal(ok.statusCode, 303, ok.body);
  assert.match([ok.headers['set-cookie'] ?? []].flat().join(', '), /tspb_session=/);
});

function dbBytes(): number {
  const base = b.config.store.path;
  return ['', '-wal', '-shm'].reduce((n, ext) => {
    try {
      return n + statSync(base + ext).size;
    } catch {
      return n;
    }
  }, 0);
}

async function suppressed(): Promise<number> {
  const r = await app.inject({ method: 'GET', url: '/metrics' });
  return parsePrometheus(r.body).samples.find((s) => s.name === 'tsp_audit_suppressed_total')?.value ?? NaN;
}

test('many bad sign-ins from one address with a huge username add a few small audit rows', async () => {
  clock.advance(120_000); // a fresh budget window
  const source = '198.51.100.7';
  const huge = 'u'.repeat(60_000);
  const sizeBefore = dbBytes();
  const suppressedBefore = await suppressed();
  const N = 120;
  const statuses = new Set<number>();
  for (let i = 0; i < N; i++) statuses.add((await signIn(await loginForm(), huge + i, 'wrong', source)).statusCode);
  assert.deepEqual([...statuses].sort(), [401, 429], 'refused: wrong password, then locked out');

  const rows = (await b.store.listAudit({ actor: `web:${source}`, limit: 1000 })).items;
  assert.ok(rows.length > 0 && rows.length <= 10, `${rows.length} audit rows from one address in a minute`);
  for (const r of rows) {
    assert.ok((r.target ?? '').length <= 64, `target of ${(r.target ?? '').length} characters`);
    assert.ok(JSON.stringify(r).length < 512, 'a small row');
  }
  assert.equal((await suppressed()) - suppressedBefore, N - rows.length, 'the rows not written are counted');
  const grown = dbBytes() - sizeBefore;
  assert.ok(grown < 256 * 1024, `the database grew by ${grown} bytes`);

  // another address has its own budget
  await signIn(await loginForm(), 'nobody', 'wrong', '198.51.100.8');
  assert.equal((await b.store.listAudit({ actor: 'web:198.51.100.8' })).total, 1);
  // and the next minute brings a new one for the first
  clock.advance(61_000);
  await signIn(await loginForm(), 'nobody', 'wrong', source);
  assert.equal((await b.store.listAudit({ actor: `web:${source}`, limit: 1000 })).total, rows.length + 1);
});
