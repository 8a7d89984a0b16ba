/** Signing in to the admin server from tests, through inject (no socket) or fetch (a real socket). */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';

export interface WebLogin {
  /** Cookie header value carrying the session. */
  cookie: string;
  csrf: string;
}

function cookieValue(setCookie: string | string[] | undefined | null, name: string): string | undefined {
  const all = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  for (const c of all) {
    const m = new RegExp(`(?:^|, )${name}=([^;]*)`).exec(c);
    if (m) return m[1];
  }
  return undefined;
}

/** GET /login, POST /login with the form's CSRF token; returns the raw reply of the POST. */
export async function postLogin(app: FastifyInstance, username: string, password: string) {
  const form = await app.inject({ method: 'GET', url: '/login' });
  assert.equal(form.statusCode, 200);
  const loginCsrf = cookieValue(form.headers['set-cookie'], 'tspb_login_csrf');
  const field = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  assert.ok(loginCsrf && field, 'login form has a CSRF cookie and field');
  return app.inject({
    method: 'POST',
    url: '/login',
    headers: { cookie: `tspb_login_csrf=${loginCsrf}`, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: field, username, password, next: '' }).toString(),
  });
}

export async function login(app: FastifyInstance, username: string, password: string): Promise<WebLogin> {
  const r = await postLogin(app, username, password);
  assert.equal(r.statusCode, 303, `login as ${username}: ${r.body}`);
  const session = cookieValue(r.headers['set-cookie'], 'tspb_session');
  assert.ok(session, 'session cookie set');
  const cookie = `tspb_session=${session}`;
  const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
  assert.equal(me.statusCode, 200, me.body);
  return { cookie, csrf: me.json<{ csrfToken: string }>().csrfToken };
}
