/** Web sessions end SESSION_LIFETIME_MS after sign-in, and the login lockout lifts after LOGIN_WINDOW_MS
 *  (time moved by a ManualClock, no sleeping). */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { buildAdminApp } from '../../../src/admin/server.js';
import { LOGIN_FAILURES_PER_USER, LOGIN_WINDOW_MS, SESSION_LIFETIME_MS } from '../../../src/admin/auth.js';
import { ManualClock } from '../../../src/clock.js';
import { login, postLogin } from '../../admin/session.js';

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

test('a session expires after its lifetime', async () => {
  const s = await login(app, 'root', 'root-password');
  const me = () => app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: s.cookie } });
  clock.advance(SESSION_LIFETIME_MS - 1000);
  assert.equal((await me()).statusCode, 200);
  clock.advance(2000);
  assert.equal((await me()).statusCode, 401);
  const page = await app.inject({ method: 'GET', url: '/tunnels', headers: { cookie: s.cookie } });
  assert.equal(page.statusCode, 303);
  assert.equal(page.headers.location, '/login?next=%2Ftunnels');
});

test('a locked-out username can sign in again after the window', async () => {
  for (let i = 0; i < LOGIN_FAILURES_PER_USER; i++)
    assert.equal((await postLogin(app, 'root', 'wrong-password')).statusCode, 401);
  assert.equal((await postLogin(app, 'root', 'root-password')).statusCode, 429);
  clock.advance(LOGIN_WINDOW_MS + 1);
  assert.equal((await postLogin(app, 'root', 'root-password')).statusCode, 303);
});
