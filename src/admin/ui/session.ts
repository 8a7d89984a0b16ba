/** @module admin/ui/session: the public part of the web UI: its stylesheet, script and icon, signing in (with
 *  the login form's own CSRF cookie, admin/auth.ts) and signing out. */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { Role } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import { LOGIN_CSRF_COOKIE, LOGIN_CSRF_LIFETIME_MS, SESSION_COOKIE, SESSION_LIFETIME_MS } from '../auth.js';
import { AUDIT_TARGET_MAX, truncate } from '../audit-budget.js';
import { parseCookies, serializeCookie } from '../http.js';
import { STYLESHEET, SCRIPT, FAVICON_SVG } from '../assets.js';
import { loginPage } from '../views/layout.js';
import { principalOf } from '../routes.js';
import { field, page, type Form } from './common.js';

/** Where to go after sign-in: a local path only (no open redirect), else by role. */
function safeNext(next: string, role: Role): string {
  if (/^\/(?![/\\])[\x21-\x7e]*$/.test(next) && !next.startsWith('/login')) return next;
  return role === 'admin' ? '/' : '/me';
}

export function registerAssetRoutes(app: FastifyInstance): void {
  app.get('/assets/app.css', { config: { role: 'public' } }, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(STYLESHEET),
  );
  app.get('/assets/app.js', { config: { role: 'public' } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(SCRIPT),
  );
  for (const icon of ['/favicon.ico', '/favicon.svg'])
    app.get(icon, { config: { role: 'public' } }, async (_req, reply) =>
      reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(FAVICON_SVG),
    );
}

export function registerSessionRoutes(app: FastifyInstance, ctx: AdminContext): void {
  // Secure under the admin listener's TLS, and on any HTTPS request (the self-service listener's own TLS)
  const cookie = (name: string, value: string, maxAgeS: number, req?: FastifyRequest) =>
    serializeCookie(name, value, {
      maxAgeS,
      secure: ctx.secureCookies || req?.protocol === 'https',
      sameSite: name === SESSION_COOKIE ? 'Lax' : 'Strict',
      httpOnly: true,
    });

  app.get<{ Querystring: { next?: string } }>('/login', { config: { role: 'public' } }, async (req, reply) => {
    const csrf = await ctx.auth.issueLoginCsrf();
    reply.header('set-cookie', cookie(LOGIN_CSRF_COOKIE, csrf, LOGIN_CSRF_LIFETIME_MS / 1000, req));
    return page(reply, loginPage({ csrf, next: (req.query.next ?? '').slice(0, 2048) }));
  });

  app.post<{ Body: Form }>('/login', { config: { role: 'public' } }, async (req, reply) => {
    const form = req.body ?? {};
    await ctx.auth.checkLoginCsrf(parseCookies(req.headers.cookie).get(LOGIN_CSRF_COOKIE), field(form, '_csrf'));
    const username = field(form, 'username');
    try {
      const { cookie: session, account } = await ctx.auth.login(username, field(form, 'password'), req.ip);
      reply.header('set-cookie', [
        cookie(SESSION_COOKIE, session, SESSION_LIFETIME_MS / 1000, req),
        cookie(LOGIN_CSRF_COOKIE, '', 0, req),
      ]);
      return reply.redirect(safeNext(field(form, 'next'), account.role), 303);
    } catch (err) {
      if (!(err instanceof BrokerError) || (err.code !== 'AUTH_FAILED' && err.code !== 'API_RATE_LIMITED')) throw err;
      // a failed sign-in is a page, not an error: the form again, with the reason
      const csrf = await ctx.auth.issueLoginCsrf();
      reply.header('set-cookie', cookie(LOGIN_CSRF_COOKIE, csrf, LOGIN_CSRF_LIFETIME_MS / 1000, req));
      reply.code(err.code === 'API_RATE_LIMITED' ? 429 : 401);
      return page(
        reply,
        loginPage({
          csrf,
          next: field(form, 'next').slice(0, 2048),
          error: err.message,
          username: truncate(username, AUDIT_TARGET_MAX),
        }),
      );
    }
  });

  app.post('/logout', { config: { role: 'any' } }, async (req, reply) => {
    await ctx.auth.logout(principalOf(req));
    reply.header('set-cookie', cookie(SESSION_COOKIE, '', 0, req));
    return reply.redirect('/login', 303);
  });
}
