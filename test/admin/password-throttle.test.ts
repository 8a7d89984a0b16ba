/** Self-service password changes (`PUT /api/v1/me/password`, the /me form) are throttled like sign-in: a wrong
 *  current password is a failed attempt of that account and that address, and past the limits (5 per account,
 *  20 per address, in 15 minutes) the change is refused with 429 without checking the password, in the API
 *  with a JSON reason and in the UI with a page saying so. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { ManualClock } from '../../src/clock.js';
import { login, postLogin, type WebLogin } from './session.js';

let b: TestBroker;
let app: FastifyInstance;
const clock = new ManualClock(Date.now());

before(async () => {
  b = await startTestBroker();
  app = await buildAdminApp({ ...b, clock });
});
after(async () => {
  await app?.close();
  await b?.stop();
});

function changeViaApi(s: WebLogin, currentPassword: string, newPassword: string, remoteAddress = '127.0.0.1') {
  return app.inject({
    method: 'PUT',
    url: '/api/v1/me/password',
    remoteAddress,
    headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
    payload: { currentPassword, newPassword },
  });
}

function changeViaForm(s: WebLogin, currentPassword: string, newPassword: string) {
  return app.inject({
    method: 'POST',
    url: '/me/password',
    headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: s.csrf, currentPassword, newPassword }).toString(),
  });
}

test('API: five wrong current passwords lock the account out of password changes and sign-in (429)', async () => {
  await b.addUser('hank', 'hank-password');
  const hank = await login(app, 'hank', 'hank-password');
  for (let i = 0; i < 5; i++) {
    const r = await changeViaApi(hank, `wrong-${i}-password`, 'hank-new-password');
    assert.equal(r.statusCode, 401, r.body);
    assert.equal(r.json<{ code: string }>().code, 'AUTH_FAILED');
  }
  const locked = await changeViaApi(hank, 'hank-password', 'hank-new-password');
  assert.equal(locked.statusCode, 429, locked.body);
  const e = locked.json<{ code: string; message: string }>();
  assert.equal(e.code, 'API_RATE_LIMITED');
  assert.match(e.message, /too many wrong passwords.*try again in 15 minutes/);
  assert.equal((await postLogin(app, 'hank', 'hank-password')).statusCode, 429, 'sign-in shares the lockout');
  const audit = await b.store.listAudit({ action: 'auth.fail', actor: 'user:hank' });
  assert.equal(audit.total, 5, 'each wrong current password is audited');
  assert.deepEqual(audit.items[0]?.detail, { reason: 'wrong current password' });

  clock.advance(15 * 60_000 + 1000);
  assert.equal((await changeViaApi(hank, 'hank-password', 'hank-new-password')).statusCode, 204);
});

test('API: twenty wrong current passwords from one address lock that address out, not others', async () => {
  const sessions: WebLogin[] = [];
  for (let i = 0; i < 6; i++) {
    await b.addUser(`ip${i}`, `ip${i}-password`);
    sessions.push(await login(app, `ip${i}`, `ip${i}-password`));
  }
  const source = '198.51.100.20';
  for (let i = 0; i < 20; i++) {
    const r = await changeViaApi(sessions[i % 5]!, 'not-my-password', 'brand-new-password', source);
    assert.equal(r.statusCode, 401, `attempt ${i}: ${r.body}`);
  }
  const fresh = sessions[5]!;
  assert.equal((await changeViaApi(fresh, 'ip5-password', 'brand-new-password', source)).statusCode, 429);
  assert.equal((await changeViaApi(fresh, 'ip5-password', 'brand-new-password', '198.51.100.21')).statusCode, 204);
});

test('UI: a wrong current password shows the reason; past the limit the page says to wait (429)', async () => {
  await b.addUser('ivy', 'ivy-password');
  const ivy = await login(app, 'ivy', 'ivy-password');
  for (let i = 0; i < 5; i++) {
    const r = await changeViaForm(ivy, 'not-the-password', 'ivy-new-password');
    assert.equal(r.statusCode, 401);
    assert.match(r.body, /the current password is wrong/);
  }
  const locked = await changeViaForm(ivy, 'ivy-password', 'ivy-new-password');
  assert.equal(locked.statusCode, 429);
  assert.match(String(locked.headers['content-type']), /text\/html/);
  assert.match(locked.body, /too many wrong passwords for this account or from this address: try again in 15 minutes/);
  // the password did not change
  clock.advance(15 * 60_000 + 1000);
  const ok = await changeViaForm(ivy, 'ivy-password', 'ivy-new-password');
  assert.equal(ok.statusCode, 303);
  assert.equal(ok.headers.location, '/me?done=ownpassword&subject=');
});
