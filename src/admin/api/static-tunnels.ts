/** @module admin/api/static-tunnels: an account's static 6in4 tunnel under /api/v1 (broker/static-tunnels.ts):
 *  the operator's routes under /accounts/{username}/static-tunnel (admin) and the account holder's own under
 *  /me/static-tunnel (a web session of that account). The same five operations on both: show, create, set the
 *  endpoint, make a new update key (shown once), remove. On /me, endpoint changes and new keys count against
 *  staticTunnels.changesPerHour (429 API_RATE_LIMITED beyond). */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { Account } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import { principalOf } from '../routes.js';
import { commonErrors, errorSchema, noContent, tunnelSchema, usernameParam } from '../schemas.js';

export const staticTunnelSchema = {
  type: 'object',
  required: ['hostname', 'username', 'endpoint', 'delegatePrefix', 'hasUpdateKey', 'createdAt', 'updatedAt'],
  properties: {
    hostname: { type: 'string', description: 'the name dyndns2 updates give (hostname=)' },
    username: { type: 'string' },
    endpoint: { type: ['string', 'null'], description: "the client's IPv4 (6in4 endpoint); null: not set yet" },
    delegatePrefix: { type: 'boolean', description: "the account's delegated prefix is routed to it too" },
    hasUpdateKey: { type: 'boolean', description: 'an update key exists (its value is shown only when made)' },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
    tunnel: { anyOf: [tunnelSchema, { type: 'null' }], description: 'the live tunnel carrying it, or null' },
  },
} as const;

const hostname = { type: 'string', minLength: 1, maxLength: 253 } as const;
const endpoint = { type: 'string', minLength: 7, maxLength: 15, description: 'public unicast IPv4' } as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    hostname: { ...hostname, description: 'default: the username in lower case' },
    endpoint,
    delegatePrefix: { type: 'boolean', default: false },
  },
} as const;

const endpointBody = {
  type: 'object',
  additionalProperties: false,
  required: ['endpoint'],
  properties: { endpoint },
} as const;

const endpointReply = {
  type: 'object',
  properties: { result: { type: 'string', enum: ['good', 'nochg'] }, staticTunnel: staticTunnelSchema },
} as const;

const keyReply = {
  type: 'object',
  properties: {
    updateKey: { type: 'string', description: 'shown this once: the password for dyndns2 updates' },
  },
} as const;

type Resolve = (req: FastifyRequest) => Promise<Account>;

/** The routes on one base path, for the account `resolve` finds. */
function registerOn(app: FastifyInstance, ctx: AdminContext, base: string, role: 'admin' | 'any', resolve: Resolve) {
  const statics = ctx.broker.statics;
  const params = role === 'admin' ? { params: usernameParam } : {};
  const tags = ['static tunnels'];
  const config = { role };
  const errors = { ...commonErrors, 404: errorSchema, 409: errorSchema };

  app.get(
    base,
    {
      config,
      schema: {
        summary: 'Show the static 6in4 tunnel',
        tags,
        ...params,
        response: { 200: staticTunnelSchema, ...errors },
      },
    },
    async (req) => statics.view(await statics.require(await resolve(req))),
  );

  app.post<{ Body: { hostname?: string; endpoint?: string; delegatePrefix?: boolean } }>(
    base,
    {
      config,
      schema: {
        summary: 'Create the static 6in4 tunnel (one per account; live at once when it has an endpoint)',
        tags,
        ...params,
        body: createBody,
        response: { 201: staticTunnelSchema, ...errors },
      },
    },
    async (req, reply) => {
      const account = await resolve(req);
      const st = await statics.create(principalOf(req).actor, account, req.body ?? {});
      return reply.code(201).send(statics.view(st));
    },
  );

  app.put<{ Body: { endpoint: string } }>(
    `${base}/endpoint`,
    {
      config,
      schema: {
        summary: "Set the tunnel's IPv4 endpoint; the data plane follows at once",
        tags,
        ...params,
        body: endpointBody,
        response: { 200: endpointReply, ...errors },
      },
    },
    async (req) => {
      const account = await resolve(req);
      const result = await statics.setEndpoint(
        principalOf(req).actor,
        await statics.require(account),
        req.body.endpoint,
        'api',
        { counted: role !== 'admin' },
      );
      return { result, staticTunnel: statics.view(await statics.require(account)) };
    },
  );

  app.post(
    `${base}/update-key`,
    {
      config,
      schema: {
        summary: 'Make a new update key for dyndns2 updates (the old one stops working); shown once',
        tags,
        ...params,
        response: { 200: keyReply, ...errors },
      },
    },
    async (req) => {
      const st = await statics.require(await resolve(req));
      return { updateKey: await statics.newUpdateKey(principalOf(req).actor, st, { counted: role !== 'admin' }) };
    },
  );

  app.delete(
    base,
    {
      config,
      schema: {
        summary: 'Remove the static 6in4 tunnel (its live tunnel ends; the account keeps its addresses)',
        tags,
        ...params,
        response: { ...noContent, ...errors },
      },
    },
    async (req, reply) => {
      const st = await statics.require(await resolve(req));
      await statics.remove(principalOf(req).actor, st);
      return reply.code(204).send();
    },
  );
}

export function registerStaticTunnelApi(app: FastifyInstance, ctx: AdminContext): void {
  registerOn(app, ctx, '/accounts/:username/static-tunnel', 'admin', (req) =>
    ctx.accounts.get((req.params as { username: string }).username),
  );
  registerOn(app, ctx, '/me/static-tunnel', 'any', async (req) => {
    const p = principalOf(req);
    if (p.kind !== 'session')
      throw new BrokerError('API_FORBIDDEN', 'a token has no account; use /accounts/{username}');
    return p.account;
  });
}
