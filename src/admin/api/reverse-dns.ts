/** @module admin/api/reverse-dns: an account's reverse-DNS delegation under /api/v1 (broker/reverse-dns.ts):
 *  operators for any account, account holders (web session) for their own. A change is audited even when the
 *  DNS update then fails (the wish is stored and retried), which answers 502 with the server's reason. */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BrokerError, isBrokerError } from '../../errors.js';
import type { AdminContext } from '../context.js';
import { commonErrors, errorSchema, usernameParam } from '../schemas.js';
import { principalOf } from '../routes.js';

const statusSchema = {
  type: 'object',
  properties: {
    servers: { type: 'array', items: { type: 'string' }, description: 'name servers the account wants' },
    published: {
      type: 'array',
      items: { type: 'string' },
      description: 'ip6.arpa names delegated to them at the DNS server',
    },
    error: { type: ['string', 'null'], description: "the last update's failure; null when DNS is up to date" },
    prefix: { type: ['string', 'null'], description: "the account's delegated prefix (CIDR), if it holds one" },
  },
} as const;

const body = {
  type: 'object',
  additionalProperties: false,
  required: ['servers'],
  properties: {
    // bounds of the request only: 16 is above reverseDns.maxNameServers' 13, so that check (with its reason)
    // decides how many; 253 is the longest DNS name
    servers: {
      type: 'array',
      maxItems: 16,
      items: { type: 'string', maxLength: 253 },
      description: 'host names of the name servers ([] withdraws the delegation)',
    },
  },
} as const;

const errors = { ...commonErrors, 404: errorSchema, 409: errorSchema, 429: errorSchema, 502: errorSchema };

/** The account's delegation and its prefix (the API's answer, and the /me page's card). */
export async function reverseDnsStatus(ctx: AdminContext, accountId: number) {
  const alloc = await ctx.store.findAllocation(accountId, 'delegation');
  const s = await ctx.broker.reverseDns.status(accountId);
  return { ...s, prefix: alloc ? `${alloc.prefix}/${alloc.prefixLen}` : null };
}

/** Sets the servers and audits the change; a failed DNS update still counts as a change made (it is retried). */
export async function setReverseDns(
  ctx: AdminContext,
  actor: string,
  account: { id: number; username: string },
  servers: string[],
) {
  const audit = () =>
    ctx.store.addAudit({
      at: ctx.clock.now(),
      actor,
      action: 'account.rdns',
      target: account.username,
      detail: { servers },
    });
  try {
    await ctx.broker.reverseDns.setServers(account.id, servers);
  } catch (err) {
    if (isBrokerError(err) && err.code === 'DNS_DELEGATION') await audit();
    throw err;
  }
  await audit();
  return reverseDnsStatus(ctx, account.id);
}

function ownAccount(req: FastifyRequest) {
  const p = principalOf(req);
  if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'a token has no account; sign in as the account');
  return p;
}

export function registerReverseDnsApi(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Params: { username: string } }>(
    '/accounts/:username/reverse-dns',
    {
      schema: {
        summary: "An account's reverse-DNS delegation",
        tags: ['accounts'],
        params: usernameParam,
        response: { 200: statusSchema, ...errors },
      },
    },
    async (req) => reverseDnsStatus(ctx, (await ctx.accounts.get(req.params.username)).id),
  );
  app.put<{ Params: { username: string }; Body: { servers: string[] } }>(
    '/accounts/:username/reverse-dns',
    {
      schema: {
        summary: "Set the name servers an account's prefix is delegated to (502: stored, but the update failed)",
        tags: ['accounts'],
        params: usernameParam,
        body,
        response: { 200: statusSchema, ...errors },
      },
    },
    async (req) =>
      setReverseDns(ctx, principalOf(req).actor, await ctx.accounts.get(req.params.username), req.body.servers),
  );
  app.get(
    '/me/reverse-dns',
    {
      config: { role: 'any' },
      schema: {
        summary: "The signed-in account's reverse-DNS delegation (web session only)",
        tags: ['self'],
        response: { 200: statusSchema, ...errors },
      },
    },
    async (req) => reverseDnsStatus(ctx, ownAccount(req).account.id),
  );
  app.put<{ Body: { servers: string[] } }>(
    '/me/reverse-dns',
    {
      config: { role: 'any' },
      schema: {
        summary: "Set the name servers the signed-in account's prefix is delegated to (web session only)",
        tags: ['self'],
        body,
        response: { 200: statusSchema, ...errors },
      },
    },
    async (req) => {
      const p = ownAccount(req);
      return setReverseDns(ctx, p.actor, p.account, req.body.servers);
    },
  );
}
