/** @module admin/ui: the web UI's routes: server-rendered pages (admin/views.ts) and HTML forms. Each route
 *  says its role in `config.role` ('public', 'any' or 'admin'; admin by default). The onRequest hook
 *  authenticates from the session cookie; a missing session is thrown as API_UNAUTHORIZED, which the one error
 *  handler (admin/server.ts) turns into a redirect to /login, and a wrong role into a 403 page. POST forms
 *  must carry the session's CSRF token in `_csrf` (checked in preHandler, once the body is parsed); the login
 *  form carries a token the server issued and set in a cookie (admin/auth.ts). Successful POSTs redirect (303)
 *  so a reload does not repeat them. */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../errors.js';
import type { AccountLimits, Role } from '../store/types.js';
import type { TunnelType } from '../dataplane/types.js';
import type { AdminContext } from './context.js';
import {
  LOGIN_CSRF_COOKIE,
  LOGIN_CSRF_LIFETIME_MS,
  SESSION_COOKIE,
  SESSION_LIFETIME_MS,
  type Principal,
} from './auth.js';
import { AUDIT_TARGET_MAX, truncate } from './audit-budget.js';
import { parseCookies, serializeCookie } from './http.js';
import { principalOf, checkLimits } from './api.js';
import { STYLESHEET, SCRIPT, FAVICON_SVG } from './assets.js';
import type { SafeHtml } from './html.js';
import * as views from './views.js';
import { rangeOf, rangeRates, ratesFromSamples, topTalkers, type RangeKey } from './history.js';
import { isSelfService } from './self-service.js';
import { MAX_BLOCK_MINUTES } from '../broker/blocks.js';
import type { Config } from '../config/schema.js';

type Form = Record<string, string | string[] | undefined>;

/** Messages shown after a redirect, by key: the query string carries only the key and a subject. */
const DONE: Record<string, (subject: string) => string> = {
  created: (s) => `Account ${s} created.`,
  password: (s) => `Password of ${s} changed.`,
  disabled: (s) => `${s} disabled; its live tunnels were ended.`,
  enabled: (s) => `${s} enabled.`,
  deleted: (s) => `${s} deleted.`,
  limits: (s) => `Limits of ${s} saved.`,
  killed: (s) => `Tunnel ${s} ended.`,
  killblocked: (s) => {
    const [id, minutes] = s.split(':');
    return `Tunnel ${id} ended; its owner gets no new tunnel for ${minutes} minutes.`;
  },
  revoked: (s) => `Token ${s} revoked.`,
  ownpassword: () => 'Your password was changed.',
};

function flashOf(req: FastifyRequest): string | undefined {
  const q = req.query as Record<string, string | undefined>;
  const f = q.done ? DONE[q.done] : undefined;
  return f?.(q.subject ?? '');
}

function field(form: Form, name: string): string {
  const v = form[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : '';
}

function viewer(p: Principal): views.Viewer {
  if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'the web UI needs a signed-in account, not a token');
  return { username: p.account.username, role: p.account.role, csrfToken: p.csrfToken };
}

function page(reply: FastifyReply, body: SafeHtml): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(body.text);
}

function done(reply: FastifyReply, to: string, key: string, subject = ''): FastifyReply {
  const sep = to.includes('?') ? '&' : '?';
  return reply.redirect(`${to}${sep}done=${key}&subject=${encodeURIComponent(subject)}`, 303);
}

/** Where to go after sign-in: a local path only (no open redirect), else by role. */
function safeNext(next: string, role: Role): string {
  if (/^\/(?![/\\])[\x21-\x7e]*$/.test(next) && !next.startsWith('/login')) return next;
  return role === 'admin' ? '/' : '/me';
}

function parsePrefixLen(s: string, name: string): number | undefined {
  if (s === '') return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 16 || n > 64)
    throw new BrokerError('API_BAD_REQUEST', `${name} must be a whole number from 16 to 64`);
  return n;
}

/** The TSP server account holders should configure: admin.publicTspHost, else serverIpv4, else the TSP listen
 *  address unless it is a wildcard; null when none is configured (the /me page then says so). */
export function publicTspHost(c: Config): string | null {
  if (c.admin.publicTspHost) return c.admin.publicTspHost;
  if (c.serverIpv4) return c.serverIpv4;
  return c.listen.address !== '0.0.0.0' ? c.listen.address : null;
}

export function registerUi(app: FastifyInstance, ctx: AdminContext): void {
  // Secure under the admin listener's TLS, and on any HTTPS request (the self-service listener's own TLS)
  const cookie = (name: string, value: string, maxAgeS: number, req?: FastifyRequest) =>
    serializeCookie(name, value, {
      maxAgeS,
      secure: ctx.secureCookies || req?.protocol === 'https',
      sameSite: name === SESSION_COOKIE ? 'Lax' : 'Strict',
      httpOnly: true,
    });

  app.addHook('onRequest', async (req) => {
    const role = req.routeOptions.config.role ?? 'admin';
    if (role === 'public') return;
    const p = await ctx.auth.identify(req);
    if (!p) throw new BrokerError('API_UNAUTHORIZED', 'sign in first');
    req.principal = p;
    if (role === 'admin' && p.role !== 'admin')
      throw new BrokerError('API_FORBIDDEN', 'this page is for administrators');
  });
  app.addHook('preHandler', async (req) => {
    if (req.method !== 'POST' || !req.principal) return;
    ctx.auth.checkCsrf(req.principal, field((req.body ?? {}) as Form, '_csrf'));
  });

  // ---------------------------------------------------------------- assets and sign-in

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

  app.get<{ Querystring: { next?: string } }>('/login', { config: { role: 'public' } }, async (req, reply) => {
    const csrf = await ctx.auth.issueLoginCsrf();
    reply.header('set-cookie', cookie(LOGIN_CSRF_COOKIE, csrf, LOGIN_CSRF_LIFETIME_MS / 1000, req));
    return page(reply, views.loginPage({ csrf, next: (req.query.next ?? '').slice(0, 2048) }));
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
        views.loginPage({
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

  // ---------------------------------------------------------------- dashboard

  const dashboardData = async (range: RangeKey): Promise<views.DashboardData> => {
    const byType = ctx.actions.liveByType();
    return {
      liveTunnels: byType.v6v4 + byType.v6udpv4,
      byType,
      halfOpen: ctx.sessionCounts().halfOpen,
      accounts: (await ctx.store.listAccounts({ limit: 0 })).total,
      history: await rangeRates(ctx.store, ctx.traffic, ctx.clock.now(), range),
      totals: ctx.traffic.update(),
      talkers: topTalkers(ctx.traffic, ctx.broker.liveTunnels(), 5),
      pools: await ctx.poolUsage(),
    };
  };

  app.get<{ Querystring: { range?: string } }>('/', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    if (p.role !== 'admin') return reply.redirect('/me', 303);
    return page(reply, views.dashboardPage(viewer(p), await dashboardData(rangeOf(req.query.range))));
  });

  app.get<{ Querystring: { range?: string } }>('/dashboard/live', async (req, reply) =>
    page(reply, views.dashboardLive(await dashboardData(rangeOf(req.query.range)))),
  );

  // ---------------------------------------------------------------- tunnels

  /** One page of the tunnel list, searched, filtered and sorted in the store (or over the live ones). An
   *  account filter naming no account shows nothing rather than an error page. */
  const tunnelList = async (q: views.TunnelListQuery) => {
    try {
      return await ctx.actions.tunnels({
        state: q.state,
        ...(q.type ? { type: q.type } : {}),
        ...(q.account ? { username: q.account } : {}),
        ...(q.search ? { search: q.search } : {}),
        sort: q.sort,
        order: q.order,
        offset: q.offset,
        limit: views.TUNNEL_PAGE,
      });
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'STORE_NOT_FOUND') return { items: [], total: 0 };
      throw err;
    }
  };

  app.get<{ Querystring: Record<string, string | undefined> }>('/tunnels', async (req, reply) => {
    const q = views.tunnelListQuery(req.query);
    const list = await tunnelList(q);
    const recent =
      q.state === 'live' ? (await ctx.actions.tunnels({ state: 'ended', offset: 0, limit: 10 })).items : null;
    return page(reply, views.tunnelsPage(viewer(principalOf(req)), q, list, recent, ctx.clock.now(), flashOf(req)));
  });

  // the list alone, for the page's live refresh (assets.ts)
  app.get<{ Querystring: Record<string, string | undefined> }>('/tunnels/list', async (req, reply) => {
    const q = views.tunnelListQuery(req.query);
    return page(reply, views.tunnelList(viewer(principalOf(req)), q, await tunnelList(q), ctx.clock.now()));
  });

  app.get<{ Params: { id: string } }>('/tunnels/:id', async (req, reply) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id) || id < 1) throw new BrokerError('API_NOT_FOUND', 'no such tunnel');
    const t = await ctx.actions.tunnel(id);
    const samples = t.live ? ctx.traffic.tunnelSamples(id) : [];
    return page(
      reply,
      views.tunnelPage(viewer(principalOf(req)), t, ctx.clock.now(), {
        points: ratesFromSamples(samples),
        from: samples[0]?.at ?? ctx.clock.now(),
        to: ctx.clock.now(),
      }),
    );
  });

  app.post<{ Params: { id: string }; Body: Form }>('/tunnels/:id/kill', async (req, reply) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id) || id < 1) throw new BrokerError('API_NOT_FOUND', 'no such tunnel');
    // kill and block (the form's blockMinutes field): the same bounds as the API's
    const raw = field(req.body ?? {}, 'blockMinutes').trim();
    const blockMinutes = raw === '' ? undefined : Number(raw);
    if (
      blockMinutes !== undefined &&
      !(Number.isInteger(blockMinutes) && blockMinutes >= 1 && blockMinutes <= MAX_BLOCK_MINUTES)
    )
      throw new BrokerError('API_BAD_REQUEST', `blockMinutes must be a whole number from 1 to ${MAX_BLOCK_MINUTES}`);
    await ctx.broker.killTunnel(id, principalOf(req).actor, blockMinutes ? { blockMinutes } : {});
    return blockMinutes
      ? done(reply, '/tunnels', 'killblocked', `${id}:${blockMinutes}`)
      : done(reply, '/tunnels', 'killed', String(id));
  });

  // ---------------------------------------------------------------- accounts

  app.get<{ Querystring: { search?: string; offset?: string } }>('/accounts', async (req, reply) => {
    const search = (req.query.search ?? '').slice(0, 64);
    const offset = Math.max(0, Math.trunc(Number(req.query.offset ?? 0)) || 0);
    const limit = 50;
    const list = await ctx.accounts.list({ ...(search ? { search } : {}), offset, limit });
    return page(reply, views.accountsPage(viewer(principalOf(req)), { ...list, search, offset, limit }, flashOf(req)));
  });

  app.post<{ Body: Form }>('/accounts', async (req, reply) => {
    const form = req.body ?? {};
    const role = field(form, 'role') === 'admin' ? 'admin' : 'user';
    const a = await ctx.accounts.create(principalOf(req).actor, {
      username: field(form, 'username'),
      password: field(form, 'password'),
      role,
    });
    return done(reply, `/accounts/${encodeURIComponent(a.username)}`, 'created', a.username);
  });

  app.get<{ Params: { username: string } }>('/accounts/:username', async (req, reply) => {
    const a = await ctx.accounts.get(req.params.username);
    const tunnels = await ctx.actions.tunnels({ state: 'all', username: a.username, offset: 0, limit: 20 });
    return page(reply, views.accountPage(viewer(principalOf(req)), a, tunnels.items, ctx.clock.now(), flashOf(req)));
  });

  const accountUrl = (u: string) => `/accounts/${encodeURIComponent(u)}`;

  app.post<{ Params: { username: string }; Body: Form }>('/accounts/:username/password', async (req, reply) => {
    await ctx.accounts.setPassword(principalOf(req).actor, req.params.username, field(req.body ?? {}, 'password'));
    return done(reply, accountUrl(req.params.username), 'password', req.params.username);
  });

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    app.post<{ Params: { username: string } }>(`/accounts/:username/${verb}`, async (req, reply) => {
      await ctx.actions.setDisabled(principalOf(req).actor, req.params.username, disabled);
      return done(reply, accountUrl(req.params.username), disabled ? 'disabled' : 'enabled', req.params.username);
    });
  }

  app.post<{ Params: { username: string }; Body: Form }>('/accounts/:username/limits', async (req, reply) => {
    const form = req.body ?? {};
    const raw = form.tunnelTypes;
    const types = (Array.isArray(raw) ? raw : raw ? [raw] : []).filter(
      (t): t is TunnelType => t === 'v6v4' || t === 'v6udpv4',
    );
    const limits: AccountLimits = {};
    if (types.length) limits.tunnelTypes = [...new Set(types)];
    const min = parsePrefixLen(field(form, 'minPrefixLen'), 'minPrefixLen');
    const max = parsePrefixLen(field(form, 'maxPrefixLen'), 'maxPrefixLen');
    if (min !== undefined) limits.minPrefixLen = min;
    if (max !== undefined) limits.maxPrefixLen = max;
    checkLimits(limits);
    await ctx.accounts.setLimits(principalOf(req).actor, req.params.username, limits);
    return done(reply, accountUrl(req.params.username), 'limits', req.params.username);
  });

  app.post<{ Params: { username: string } }>('/accounts/:username/delete', async (req, reply) => {
    await ctx.actions.deleteAccount(principalOf(req).actor, req.params.username);
    return done(reply, '/accounts', 'deleted', req.params.username);
  });

  // ---------------------------------------------------------------- pools, audit, tokens

  app.get('/pools', async (req, reply) =>
    page(reply, views.poolsPage(viewer(principalOf(req)), await ctx.poolUsage())),
  );

  app.get<{ Querystring: Record<string, string | undefined> }>('/audit', async (req, reply) => {
    const offset = Math.max(0, Math.trunc(Number(req.query.offset ?? 0)) || 0);
    const text = (k: string, max: number) => (req.query[k] ?? '').trim().slice(0, max);
    const day = (k: string) => (/^\d{4}-\d{2}-\d{2}$/.test(req.query[k] ?? '') ? req.query[k]! : '');
    const f: views.AuditFilterForm = {
      action: text('action', 64),
      actor: text('actor', 128),
      target: text('target', 128),
      from: day('from'),
      to: day('to'),
    };
    const from = f.from ? Date.parse(`${f.from}T00:00:00Z`) : NaN;
    const to = f.to ? Date.parse(`${f.to}T00:00:00Z`) + 86_400_000 : NaN; // the whole "to" day
    const limit = 50;
    const list = await ctx.store.listAudit({
      offset,
      limit,
      ...(f.action ? { action: f.action } : {}),
      ...(f.actor ? { actorContains: f.actor } : {}),
      ...(f.target ? { target: f.target } : {}),
      ...(Number.isFinite(from) ? { from } : {}),
      ...(Number.isFinite(to) ? { to } : {}),
    });
    return page(reply, views.auditPage(viewer(principalOf(req)), { ...list, offset, limit, ...f }));
  });

  app.get('/tokens', async (req, reply) =>
    page(
      reply,
      views.tokensPage(viewer(principalOf(req)), await ctx.tokens.list(), undefined, flashOf(req), ctx.clock.now()),
    ),
  );

  app.post<{ Body: Form }>('/tokens', async (req, reply) => {
    const p = principalOf(req);
    const form = req.body ?? {};
    const days = field(form, 'expiresInDays').trim();
    const { token, record } = await ctx.tokens.create(p.actor, field(form, 'name'), {
      expiresInDays: days === '' ? undefined : Number(days),
    });
    // shown once, in this reply: no redirect (the token must not sit in a URL or be re-rendered later)
    return page(
      reply.header('cache-control', 'no-store'),
      views.tokensPage(viewer(p), await ctx.tokens.list(), { name: record.name, token }, undefined, ctx.clock.now()),
    );
  });

  app.post<{ Params: { name: string } }>('/tokens/:name/revoke', async (req, reply) => {
    await ctx.tokens.revoke(principalOf(req).actor, req.params.name);
    return done(reply, '/tokens', 'revoked', req.params.name);
  });

  // ---------------------------------------------------------------- account holder

  app.get('/me', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    const v = { ...viewer(p), selfService: isSelfService(req) };
    if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
    const a = p.account;
    const live = (await ctx.actions.tunnels({ state: 'live', username: a.username, offset: 0, limit: 10 })).items;
    const recent = (await ctx.actions.tunnels({ state: 'ended', username: a.username, offset: 0, limit: 10 })).items;
    // the configured address only, never the browser's Host header (the admin's own address, often loopback)
    const host = publicTspHost(ctx.config);
    const bracketed = host?.includes(':') ? `[${host}]` : host;
    const server = host === null ? null : ctx.tspPort === 3653 ? host : `${bracketed}:${ctx.tspPort}`;
    const delegated = live.find((t) => t.prefix) ?? recent.find((t) => t.prefix);
    const cfg: views.ClientConfig = {
      server,
      username: a.username,
      hostType: delegated ? 'router' : 'host',
      prefixLen: delegated?.prefixLen ?? null,
    };
    return page(reply, views.mePage(v, a, live, recent, cfg, ctx.clock.now(), flashOf(req)));
  });

  app.post<{ Body: Form }>('/me/password', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
    const form = req.body ?? {};
    await ctx.auth.throttledPasswordCheck(p.actor, p.account.username, req.ip, () =>
      ctx.actions.changeOwnPassword(p.actor, p.account, field(form, 'currentPassword'), field(form, 'newPassword')),
    );
    return done(reply, '/me', 'ownpassword');
  });
}
