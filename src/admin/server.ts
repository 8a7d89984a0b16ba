/** @module admin/server: the admin HTTP server: REST API (/api/v1, admin/api.ts), web UI (admin/ui.ts) and
 *  /metrics (admin/metrics.ts), on config.admin.address:port (127.0.0.1:8080 by default), HTTPS when
 *  config.admin.tls names a certificate and key.
 *
 *  `buildAdminApp` makes the fastify app without listening (tests use inject); `startAdminServer` also
 *  listens. Closing the app stops the traffic sampler and detaches the metrics from the broker.
 *
 *  Errors become replies in exactly one place, the error handler below (docs/style.md §8): under /api a JSON
 *  `{ code, message }` with the registry's status; in the web UI a redirect to /login for 401 and an HTML
 *  error page otherwise. Unknown errors are logged with their stack and answered generically.
 *
 *  /metrics is unauthenticated: the listener is on loopback by default. Whoever exposes it further should put
 *  it behind their scraper's network policy (docs/admin.md). */

import { readFileSync } from 'node:fs';
import fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BrokerError, ERRORS, isBrokerError, type ErrorCode } from '../errors.js';
import type { Config } from '../config/schema.js';
import type { PoolName, Store } from '../store/types.js';
import type { Broker } from '../broker/broker.js';
import type { AccountService } from '../broker/accounts.js';
import { IPV4_LEASE_LEN, type Pools } from '../broker/pools.js';
import type { SessionCounts } from '../transport/session-host.js';
import { systemClock, type Clock } from '../clock.js';
import { TokenService } from './tokens.js';
import { Authenticator } from './auth.js';
import { TrafficMeter } from './traffic.js';
import { AdminMetrics, type RouteExportReading } from './metrics.js';
import { OpenApiBuilder } from './openapi.js';
import { registerApi } from './api.js';
import { registerUi } from './ui.js';
import { registerApiDocs } from './api-docs.js';
import { registerNicUpdate } from './nic-update.js';
import { errorPage } from './views/layout.js';
import type { PoolRow } from './views/pools.js';
import { viewerOf } from './ui/common.js';
import { isSelfService, listenSelfService, selfServiceGuard } from './self-service.js';
import type { AdminContext } from './context.js';

export const API_PREFIX = '/api/v1';
/** Largest request body: account and token forms are tiny; this stops a client from making us buffer more. */
export const BODY_LIMIT_BYTES = 64 * 1024;
const VERSION = '0.1.0';

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  // inline style attributes carry chart colours and bar widths; scripts only from our own /assets
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
};
/** Sent on every response when the server runs TLS (never over plain HTTP, where browsers ignore it anyway and
 *  it would promise HTTPS the host may not serve): one year, this host only. */
export const HSTS = 'max-age=31536000';

/** What the admin server needs from a running broker (RunningBroker has all of it). */
export interface AdminDeps {
  config: Config;
  store: Store;
  broker: Broker;
  accounts: AccountService;
  pools: Pools;
  ports?: { udp: number; tcp: number };
  sessionCounts?: () => SessionCounts;
  clock?: Clock;
  log?: Logger;
  /** Route export's counts (cluster/routes.ts) when it runs, for /metrics. */
  routeExport?: RouteExportReading | undefined;
}

export interface AdminServer {
  app: FastifyInstance;
  /** The port actually bound (differs from the configuration when it asked for port 0); 0 when admin.enabled
   *  is false and only the self-service listener runs. */
  port: number;
  /** The self-service listener's bound port, when config.selfService.enabled. */
  selfServicePort: number | null;
  close(): Promise<void>;
}

/** Form bodies as an object; a repeated key (checkbox groups) becomes an array. */
function parseForm(body: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    const cur = out[k];
    out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return out;
}

function replyFor(err: unknown): { status: number; code: ErrorCode; message: string } | undefined {
  if (isBrokerError(err)) return { status: ERRORS[err.code].http, code: err.code, message: err.message };
  const fe = err as Partial<FastifyError>;
  if (fe.validation) return { status: 400, code: 'API_BAD_REQUEST', message: fe.message ?? 'invalid request' };
  // fastify's own client errors (bad JSON, unsupported media type, body too large): keep their status
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)
    return {
      status: fe.statusCode,
      code: fe.statusCode === 404 ? 'API_NOT_FOUND' : 'API_BAD_REQUEST',
      message: fe.message ?? 'bad request',
    };
  return undefined;
}

/** fastify's options: the body limit, the logger, ajv's strictness and TLS. */
function fastifyOptions(deps: AdminDeps) {
  const tls = deps.config.admin.tls;
  return {
    bodyLimit: BODY_LIMIT_BYTES,
    // request lines are info-level noise: the admin logger starts at warn (or quieter, as the broker's is)
    ...(deps.log
      ? {
          loggerInstance: deps.log.child(
            { component: 'admin' },
            { level: deps.log.levelVal >= 40 ? deps.log.level : 'warn' },
          ),
        }
      : { logger: false }),
    // reject unknown properties instead of silently dropping them; coerce query strings to the schema's types
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: 'array' as const, useDefaults: true, allErrors: false },
    },
    ...(tls ? { https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } } : {}),
  };
}

/** Everything the routes use (admin/context.ts), built once per app: the traffic meter and the metrics attach to
 *  the broker here, and buildAdminApp detaches them when the app closes. */
function adminContext(deps: AdminDeps, clock: Clock): AdminContext {
  const tls = deps.config.admin.tls;
  const tokens = new TokenService(deps.store, clock);
  // the dashboard's history is stored (table traffic_samples), so its longer ranges survive a restart
  const traffic = new TrafficMeter(deps.broker.tunnels, clock, {
    store: deps.store,
    onError: (err) => deps.log?.warn({ err }, 'could not store a traffic sample; it is retried with the next one'),
  });
  const sessionCounts = deps.sessionCounts ?? (() => ({ total: 0, halfOpen: 0 }));
  const metrics = new AdminMetrics({
    broker: deps.broker,
    store: deps.store,
    traffic,
    clock,
    sessionCounts,
    ...(deps.routeExport ? { routeExport: deps.routeExport } : {}),
  });
  return {
    config: deps.config,
    store: deps.store,
    broker: deps.broker,
    accounts: deps.accounts,
    clock,
    tokens,
    auth: new Authenticator(deps.store, tokens, clock, {
      onAuditSuppressed: () => metrics.auditSuppressed.inc(),
      ...(deps.log ? { log: deps.log.child({ component: 'admin' }) } : {}),
    }),
    traffic,
    metrics,
    tspPort: deps.ports?.udp || deps.ports?.tcp || deps.config.listen.port,
    sessionCounts,
    secureCookies: tls !== null,
    // the configured pools, also before anything was allocated from them; the v4v6 pool in IPv4 terms
    poolUsage: async () => {
      const usage = await metrics.poolUsage();
      const blocks = (pool: PoolName) => usage.find((u) => u.pool === pool)?.blocks ?? 0;
      const rows: PoolRow[] = (['link', 'delegation'] as const).map((pool) => ({
        pool,
        poolPrefix: deps.pools[pool],
        blocks: blocks(pool),
        ...(pool === 'link' ? { blockLen: deps.pools.linkLeaseLen } : {}),
      }));
      const ipv4 = deps.config.pools.ipv4;
      if (ipv4) rows.push({ pool: 'ipv4', poolPrefix: ipv4, blocks: blocks('ipv4'), blockLen: IPV4_LEASE_LEN - 96 });
      return rows;
    },
  };
}

/** Form parsing and the headers of every reply; the self-service guard first of all hooks. */
function installHooks(app: FastifyInstance, tlsListener: boolean): void {
  app.decorateRequest('principal', null);
  // first of all hooks: a request from the self-service listener reaches only the account holder's routes
  app.addHook('onRequest', selfServiceGuard);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) =>
    done(null, parseForm(body as string)),
  );
  app.addHook('onSend', async (req, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (tlsListener || req.protocol === 'https') reply.header('strict-transport-security', HSTS);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });
}

/** The one place errors become replies (docs/style.md §8). */
function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const known = replyFor(err);
    if (!known) req.log.error({ err, url: req.url }, 'unhandled error in admin server');
    const r = known ?? { status: 500, code: 'INTERNAL' as const, message: ERRORS.INTERNAL.text };
    if (req.url.startsWith('/api/') || req.url.startsWith('/metrics'))
      return reply.code(r.status).send({ code: r.code, message: r.message });
    // back to the page after sign-in; a form post cannot be replayed, so after one go home instead
    // only a missing session: a wrong current password (AUTH_FAILED) is a page saying so
    if (r.code === 'API_UNAUTHORIZED')
      return reply.redirect(`/login?next=${encodeURIComponent(req.method === 'GET' ? req.url : '/')}`, 303);
    const v = viewerOf(req.principal, isSelfService(req));
    return reply
      .code(r.status)
      .type('text/html; charset=utf-8')
      .send(errorPage(v, r.status, r.code, r.message).text);
  });
  app.setNotFoundHandler((req) => {
    throw new BrokerError('API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
  });
}

export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const clock = deps.clock ?? systemClock;
  const app = fastify(fastifyOptions(deps)) as unknown as FastifyInstance;
  const ctx = adminContext(deps, clock);
  const { traffic, metrics } = ctx;
  traffic.start();
  app.addHook('onClose', async () => {
    await traffic.stop();
    metrics.close();
  });
  installHooks(app, ctx.secureCookies);
  installErrorHandlers(app);

  const openapi = new OpenApiBuilder(API_PREFIX);
  app.addHook('onRoute', (r) => openapi.collect(r));

  app.get('/metrics', async (_req, reply) => {
    const m = await metrics.render();
    return reply.type(m.contentType).send(m.body);
  });
  app.get('/healthz', async () => ({ ok: true }));
  app.get(`${API_PREFIX}/openapi.json`, async () => openapi.document(VERSION));
  registerApiDocs(app, API_PREFIX); // /api/v1/docs: Swagger UI over the document above, public like it
  await app.register(async (api) => registerApi(api, ctx), { prefix: API_PREFIX });
  await app.register(async (ui) => registerUi(ui, ctx));
  await app.register(async (nic) => registerNicUpdate(nic, ctx)); // dyndns2 updates of static tunnels
  await app.ready();
  return app;
}

/** Builds the app and listens on config.admin.address:port (when admin.enabled) and on the self-service
 *  listener's config.selfService.address:port (when selfService.enabled; admin/self-service.ts). */
export async function startAdminServer(deps: AdminDeps): Promise<AdminServer> {
  const app = await buildAdminApp(deps);
  const { admin, selfService } = deps.config;
  let port = 0;
  let self: Awaited<ReturnType<typeof listenSelfService>> | undefined;
  let what = 'admin server';
  let where = `${admin.address}:${admin.port}`;
  try {
    if (admin.enabled) {
      await app.listen({ host: admin.address, port: admin.port });
      const address = app.server.address();
      port = typeof address === 'object' && address ? address.port : admin.port;
      deps.log?.info({ address: admin.address, port, tls: admin.tls !== null }, 'admin server listening');
    }
    if (selfService.enabled) {
      what = 'self-service listener';
      where = `${selfService.address}:${selfService.port}`;
      self = await listenSelfService(app, selfService);
      deps.log?.info(
        { address: selfService.address, port: self.port, tls: selfService.tls !== null },
        'self-service listener (account holders only) listening',
      );
    }
  } catch (err) {
    await app.close();
    throw new BrokerError('CFG_INVALID', `${what} cannot listen on ${where}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    app,
    port,
    selfServicePort: self?.port ?? null,
    close: async () => {
      await self?.close();
      await app.close();
    },
  };
}
