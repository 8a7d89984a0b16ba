/** @module admin/api: the REST API under /api/v1. Each route declares its JSON Schemas (validated by fastify's
 *  ajv, published by admin/openapi.ts) and its role in `config.role`: 'public' (no credential), 'any' (any
 *  signed-in account or token) or 'admin'. The onRequest hook authenticates, checks the role and, for
 *  cookie-authenticated writes, the X-CSRF-Token header. Errors are thrown, never sent here: the one error
 *  handler in admin/server.ts turns them into `{ code, message }` replies. */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BrokerError } from '../errors.js';
import type { AccountLimits, AuditFilter, Role, TunnelSort, TunnelState } from '../store/types.js';
import { RANGE_KEYS, rangeOf, rangeRates, ratesFromSamples, topTalkers } from './history.js';
import type { TunnelType } from '../dataplane/types.js';
import type { AdminContext } from './context.js';
import {
  accountSchema,
  auditSchema,
  commonErrors,
  errorSchema,
  idParam,
  limitsSchema,
  pageOf,
  pageQuery,
  password,
  tokenSchema,
  tunnelSchema,
  usernameParam,
} from './schemas.js';
import type { Principal } from './auth.js';
import { MAX_EXPIRY_DAYS } from './tokens.js';
import { MAX_BLOCK_MINUTES } from '../broker/blocks.js';

export type RouteRole = 'public' | 'any' | 'admin';

declare module 'fastify' {
  /** Documentation only: fastify ignores them, admin/openapi.ts publishes them. */
  interface FastifySchema {
    summary?: string;
    tags?: string[];
  }
  interface FastifyContextConfig {
    role?: RouteRole;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The authenticated caller; routes marked 'any' or 'admin' always have one (the hook guarantees it). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new BrokerError('API_UNAUTHORIZED', 'authentication required');
  return req.principal;
}

const STATES = ['live', 'all', 'offered', 'established', 'ended'] as const;
const sampleSchema = {
  type: 'object',
  properties: { at: { type: 'integer' }, rxBytes: { type: 'integer' }, txBytes: { type: 'integer' } },
} as const;
const rateSchema = {
  type: 'object',
  description: 'bytes per second over the interval ending at `at`; null: no data (the broker was not running)',
  properties: { at: { type: 'integer' }, rx: { type: ['number', 'null'] }, tx: { type: ['number', 'null'] } },
} as const;
const noContent = { 204: { type: 'null', description: 'done' } } as const;

export function registerApi(app: FastifyInstance, ctx: AdminContext): void {
  app.addHook('onRequest', async (req) => {
    const role = req.routeOptions.config.role ?? 'admin';
    if (role === 'public') return;
    const p = await ctx.auth.identify(req);
    if (!p) throw new BrokerError('API_UNAUTHORIZED', 'authentication required: a bearer token or a web session');
    req.principal = p;
    if (role === 'admin' && p.role !== 'admin') throw new BrokerError('API_FORBIDDEN', 'this needs the admin role');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const header = req.headers['x-csrf-token'];
      ctx.auth.checkCsrf(p, typeof header === 'string' ? header : undefined);
    }
  });

  // ------------------------------------------------------------------ self

  app.get(
    '/me',
    {
      config: { role: 'any' },
      schema: {
        summary: 'The caller: account (web session) or token name',
        tags: ['self'],
        response: {
          200: {
            type: 'object',
            properties: {
              kind: { type: 'string', enum: ['token', 'session'] },
              role: { type: 'string' },
              actor: { type: 'string' },
              account: accountSchema,
              csrfToken: { type: 'string', description: 'send as X-CSRF-Token on writes with the session cookie' },
            },
          },
          ...commonErrors,
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return p.kind === 'token'
        ? { kind: p.kind, role: p.role, actor: p.actor }
        : { kind: p.kind, role: p.role, actor: p.actor, account: p.account, csrfToken: p.csrfToken };
    },
  );

  app.put<{ Body: { currentPassword: string; newPassword: string } }>(
    '/me/password',
    {
      config: { role: 'any' },
      schema: {
        summary:
          "Change the signed-in account's own password (web session only); wrong current passwords count as failed sign-ins (429 when locked out)",
        tags: ['self'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['currentPassword', 'newPassword'],
          properties: { currentPassword: { type: 'string', maxLength: 255 }, newPassword: password },
        },
        response: { ...noContent, ...commonErrors, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      if (p.kind !== 'session')
        throw new BrokerError('API_FORBIDDEN', 'a token has no password; sign in as the account');
      await ctx.auth.throttledPasswordCheck(p.actor, p.account.username, req.ip, () =>
        ctx.actions.changeOwnPassword(p.actor, p.account, req.body.currentPassword, req.body.newPassword),
      );
      return reply.code(204).send();
    },
  );

  // ------------------------------------------------------------------ accounts

  app.get<{ Querystring: { search?: string; offset: number; limit: number } }>(
    '/accounts',
    {
      schema: {
        summary: 'List accounts, ordered by username',
        tags: ['accounts'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { search: { type: 'string', maxLength: 64, description: 'username substring' }, ...pageQuery },
        },
        response: { 200: pageOf(accountSchema), ...commonErrors },
      },
    },
    async (req) => ctx.accounts.list(req.query),
  );

  app.post<{ Body: { username: string; password: string; role?: Role; limits?: AccountLimits; webOnly?: boolean } }>(
    '/accounts',
    {
      schema: {
        summary: 'Create an account',
        tags: ['accounts'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            password,
            role: { type: 'string', enum: ['admin', 'user'], default: 'user' },
            limits: limitsSchema,
            webOnly: {
              type: 'boolean',
              default: false,
              description: 'web UI and API only: no DIGEST-MD5 secret is stored, so no DIGEST-MD5 TSP login',
            },
          },
        },
        response: { 201: accountSchema, ...commonErrors, 409: errorSchema },
      },
    },
    async (req, reply) => {
      checkLimits(req.body.limits);
      const account = await ctx.accounts.create(principalOf(req).actor, req.body);
      return reply.code(201).send(account);
    },
  );

  app.get<{ Params: { username: string } }>(
    '/accounts/:username',
    {
      schema: {
        summary: 'Show an account',
        tags: ['accounts'],
        params: usernameParam,
        response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => ctx.accounts.get(req.params.username),
  );

  app.put<{ Params: { username: string }; Body: { password: string } }>(
    '/accounts/:username/password',
    {
      schema: {
        summary: "Set an account's password (argon2id hash and DIGEST-MD5 secret together)",
        tags: ['accounts'],
        params: usernameParam,
        body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password } },
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.accounts.setPassword(principalOf(req).actor, req.params.username, req.body.password);
      return reply.code(204).send();
    },
  );

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    app.post<{ Params: { username: string } }>(
      `/accounts/:username/${verb}`,
      {
        schema: {
          summary: disabled ? 'Disable an account and end its live tunnels' : 'Enable an account',
          tags: ['accounts'],
          params: usernameParam,
          response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
        },
      },
      async (req) => ctx.actions.setDisabled(principalOf(req).actor, req.params.username, disabled),
    );
  }

  app.put<{ Params: { username: string }; Body: AccountLimits }>(
    '/accounts/:username/limits',
    {
      schema: {
        summary: "Replace an account's limits (absent fields: the broker's defaults)",
        tags: ['accounts'],
        params: usernameParam,
        body: limitsSchema,
        response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => {
      checkLimits(req.body);
      return ctx.accounts.setLimits(principalOf(req).actor, req.params.username, req.body);
    },
  );

  app.delete<{ Params: { username: string } }>(
    '/accounts/:username',
    {
      schema: {
        summary: 'Delete an account: ends its live tunnels and releases its addresses',
        tags: ['accounts'],
        params: usernameParam,
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.actions.deleteAccount(principalOf(req).actor, req.params.username);
      return reply.code(204).send();
    },
  );

  // ------------------------------------------------------------------ tunnels

  app.get<{
    Querystring: {
      state: (typeof STATES)[number];
      type?: TunnelType;
      username?: string;
      search?: string;
      sort?: TunnelSort;
      order?: 'asc' | 'desc';
      offset: number;
      limit: number;
    };
  }>(
    '/tunnels',
    {
      schema: {
        summary:
          'List tunnels: live ones (default, with live counters) or stored ones by state; searched, filtered, sorted (newest first by default) and paged in the store',
        tags: ['tunnels'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: STATES, default: 'live' },
            type: { type: 'string', enum: ['v6v4', 'v6udpv4'] },
            username: { type: 'string', minLength: 1, maxLength: 64 },
            search: {
              type: 'string',
              maxLength: 64,
              description: 'case-insensitive substring of the username, client IPv4, client IPv6 or delegated prefix',
            },
            sort: {
              type: 'string',
              enum: ['started', 'account', 'type', 'traffic'],
              default: 'started',
              description: 'started: creation time; traffic: rxBytes + txBytes (live counters for state=live)',
            },
            order: { type: 'string', enum: ['asc', 'desc'], default: 'desc' },
            ...pageQuery,
          },
        },
        response: { 200: pageOf(tunnelSchema), ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => ctx.actions.tunnels({ ...req.query, state: req.query.state as TunnelState | 'live' | 'all' }),
  );

  app.get<{ Params: { id: number } }>(
    '/tunnels/:id',
    {
      schema: {
        summary: 'Show a tunnel, with live counters when it is live',
        tags: ['tunnels'],
        params: idParam,
        response: { 200: tunnelSchema, ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => ctx.actions.tunnel(req.params.id),
  );

  app.get<{ Params: { id: number } }>(
    '/tunnels/:id/traffic',
    {
      schema: {
        summary:
          "A live tunnel's recent traffic: its counters every 5 s over the last 10 minutes, kept in memory while it is live (empty otherwise)",
        tags: ['tunnels'],
        params: idParam,
        response: {
          200: {
            type: 'object',
            properties: {
              live: { type: 'boolean' },
              samples: { type: 'array', items: sampleSchema },
              rates: { type: 'array', items: rateSchema },
            },
          },
          ...commonErrors,
          404: errorSchema,
        },
      },
    },
    async (req) => {
      const t = await ctx.actions.tunnel(req.params.id);
      const samples = t.live ? ctx.traffic.tunnelSamples(t.id) : [];
      return { live: t.live, samples, rates: ratesFromSamples(samples) };
    },
  );

  app.post<{ Params: { id: number }; Body: { blockMinutes?: number } | undefined }>(
    '/tunnels/:id/kill',
    {
      schema: {
        summary: 'End a live tunnel now (reason admin); with blockMinutes, also refuse its owner a new one for a while',
        tags: ['tunnels'],
        params: idParam,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: {
            blockMinutes: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_BLOCK_MINUTES,
              description:
                'A killed client usually reconnects about 80 s later. This refuses the account (or, for an anonymous ' +
                'tunnel, the source address) new tunnels with TSP 301 for this many minutes; in memory, lifted by a restart',
            },
          },
        },
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      const blockMinutes = req.body?.blockMinutes;
      await ctx.broker.killTunnel(req.params.id, principalOf(req).actor, blockMinutes ? { blockMinutes } : {});
      return reply.code(204).send();
    },
  );

  // ------------------------------------------------------------------ pools, stats, audit

  app.get(
    '/pools',
    {
      schema: {
        summary: 'Address pools and how many blocks are allocated from each',
        tags: ['pools'],
        response: {
          200: {
            type: 'array',
            items: {
              type: 'object',
              properties: { pool: { type: 'string' }, poolPrefix: { type: 'string' }, blocks: { type: 'integer' } },
            },
          },
          ...commonErrors,
        },
      },
    },
    async () => ctx.poolUsage(),
  );

  app.get<{ Querystring: { range: string } }>(
    '/stats',
    {
      schema: {
        summary:
          'Dashboard figures: live tunnels by type, the last 10 minutes of totals, the traffic rates of a range (10m from memory; 1h, 24h, 7d from the store, per 1 min, 10 min, 1 h) and the top talkers',
        tags: ['pools'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { range: { type: 'string', enum: RANGE_KEYS, default: '10m' } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              liveTunnels: { type: 'integer' },
              byType: { type: 'object', additionalProperties: { type: 'integer' } },
              traffic: { type: 'array', items: sampleSchema },
              history: {
                type: 'object',
                properties: {
                  range: { type: 'string' },
                  bucketMs: { type: 'integer' },
                  from: { type: 'integer' },
                  to: { type: 'integer' },
                  points: { type: 'array', items: rateSchema },
                },
              },
              topTalkers: {
                type: 'array',
                description: 'live tunnels that moved the most bytes over the last 10 minutes',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'integer' },
                    username: { type: ['string', 'null'] },
                    rxBytes: { type: 'integer' },
                    txBytes: { type: 'integer' },
                    spanMs: { type: 'integer' },
                  },
                },
              },
            },
          },
          ...commonErrors,
        },
      },
    },
    async (req) => {
      const byType = ctx.actions.liveByType();
      const range = rangeOf(req.query.range);
      return {
        liveTunnels: byType.v6v4 + byType.v6udpv4,
        byType,
        traffic: ctx.traffic.samples(),
        history: await rangeRates(ctx.store, ctx.traffic, ctx.clock.now(), range),
        topTalkers: topTalkers(ctx.traffic, ctx.broker.liveTunnels(), 10).map((t) => ({
          id: t.tunnel.id,
          username: t.tunnel.username,
          rxBytes: t.rxBytes,
          txBytes: t.txBytes,
          spanMs: t.spanMs,
        })),
      };
    },
  );

  app.get<{ Querystring: AuditFilter & { offset: number; limit: number } }>(
    '/audit',
    {
      schema: {
        summary: 'Audit events, newest first, filtered by action, actor, target and time',
        tags: ['audit'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            action: { type: 'string', maxLength: 64, description: 'exact action, e.g. account.create' },
            actor: { type: 'string', maxLength: 128, description: 'exact actor, e.g. admin:root' },
            actorContains: { type: 'string', maxLength: 128, description: 'case-insensitive substring of the actor' },
            target: { type: 'string', maxLength: 128, description: 'case-insensitive substring of the target' },
            from: { type: 'integer', description: 'at or after this time (Unix milliseconds)' },
            to: { type: 'integer', description: 'before this time (Unix milliseconds)' },
            ...pageQuery,
          },
        },
        response: { 200: pageOf(auditSchema), ...commonErrors },
      },
    },
    async (req) => ctx.store.listAudit(req.query),
  );

  // ------------------------------------------------------------------ tokens

  app.get(
    '/tokens',
    {
      schema: {
        summary: 'API tokens (never the token values)',
        tags: ['tokens'],
        response: { 200: { type: 'array', items: tokenSchema }, ...commonErrors },
      },
    },
    async () => ctx.tokens.list(),
  );

  app.post<{ Body: { name: string; expiresInDays?: number } }>(
    '/tokens',
    {
      schema: {
        summary: 'Create an API token; the reply is the only time its value is shown',
        tags: ['tokens'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            expiresInDays: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_EXPIRY_DAYS,
              description: 'refuse the token this many days from now (absent: never expires)',
            },
          },
        },
        response: {
          201: { ...tokenSchema, properties: { ...tokenSchema.properties, token: { type: 'string' } } },
          ...commonErrors,
          409: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const { token, record } = await ctx.tokens.create(principalOf(req).actor, req.body.name, {
        expiresInDays: req.body.expiresInDays,
      });
      return reply.code(201).send({ ...record, token });
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/tokens/:name',
    {
      schema: {
        summary: 'Revoke an API token',
        tags: ['tokens'],
        params: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
        },
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.tokens.revoke(principalOf(req).actor, req.params.name);
      return reply.code(204).send();
    },
  );
}

/** What JSON Schema cannot say: min <= max. */
export function checkLimits(l: AccountLimits | undefined): void {
  if (l?.minPrefixLen !== undefined && l.maxPrefixLen !== undefined && l.minPrefixLen > l.maxPrefixLen)
    throw new BrokerError('API_BAD_REQUEST', 'limits.minPrefixLen must be ≤ limits.maxPrefixLen');
}
