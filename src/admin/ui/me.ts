/** @module admin/ui/me: the account holder's page (/me) and password change, the only routes the self-service
 *  listener serves (admin/self-service.ts). */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { TunnelRecord } from '../../store/types.js';
import type { Config } from '../../config/schema.js';
import type { AdminContext } from '../context.js';
import { mePage, type ClientConfig } from '../views/me.js';
import { isSelfService } from '../self-service.js';
import { principalOf } from '../routes.js';
import { done, field, flashOf, page, viewer, type Form } from './common.js';
import { reverseDnsStatus, setReverseDns } from '../api/reverse-dns.js';
import { staticCardFor } from './static-tunnels.js';

/** The TSP port clients assume when server= names none (RFC 5572). */
const TSP_DEFAULT_PORT = 3653;

/** The TSP server account holders should configure: admin.publicTspHost, else serverIpv4, else the TSP listen
 *  address unless it is a wildcard; null when none is configured (the /me page then says so). */
export function publicTspHost(c: Config): string | null {
  if (c.admin.publicTspHost) return c.admin.publicTspHost;
  if (c.serverIpv4) return c.serverIpv4;
  return c.listen.address !== '0.0.0.0' ? c.listen.address : null;
}

/** The client configuration snippets' values: a router with the delegated prefix's length when the account's
 *  live or latest tunnel has one, else a host. */
function clientConfig(ctx: AdminContext, username: string, tunnels: TunnelRecord[]): ClientConfig {
  // the configured address only, never the browser's Host header (the admin's own address, often loopback)
  const host = publicTspHost(ctx.config);
  const bracketed = host?.includes(':') ? `[${host}]` : host;
  const server = host === null ? null : ctx.tspPort === TSP_DEFAULT_PORT ? host : `${bracketed}:${ctx.tspPort}`;
  const delegated = tunnels.find((t) => t.prefix);
  return {
    server,
    username,
    hostType: delegated ? 'router' : 'host',
    prefixLen: delegated?.prefixLen ?? null,
  };
}

/** The /me page; `newKey`: a static tunnel update key just made, shown this once. */
export async function renderMe(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  newKey?: string,
): Promise<FastifyReply> {
  const p = principalOf(req);
  const v = { ...viewer(p), selfService: isSelfService(req) };
  if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
  const a = p.account;
  const live = (await ctx.broker.admin.list({ state: 'live', username: a.username, offset: 0, limit: 10 })).items;
  const recent = (await ctx.broker.admin.list({ state: 'ended', username: a.username, offset: 0, limit: 10 })).items;
  const cfg = clientConfig(ctx, a.username, [...live, ...recent]);
  const rdns = ctx.config.reverseDns
    ? { ...(await reverseDnsStatus(ctx, a.id)), maxNameServers: ctx.config.reverseDns.maxNameServers }
    : undefined;
  const card = await staticCardFor(ctx, v, a, '/me/static-tunnel', newKey);
  return page(reply, mePage(v, a, live, recent, cfg, ctx.clock.now(), flashOf(req), rdns, card));
}

export function registerMeUi(app: FastifyInstance, ctx: AdminContext): void {
  app.get('/me', { config: { role: 'any' } }, async (req, reply) => renderMe(ctx, req, reply));

  app.post<{ Body: Form }>('/me/password', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
    const form = req.body ?? {};
    await ctx.auth.throttledPasswordCheck(p.actor, p.account.username, req.ip, () =>
      ctx.accounts.changeOwnPassword(
        p.actor,
        p.account.username,
        field(form, 'currentPassword'),
        field(form, 'newPassword'),
      ),
    );
    return done(reply, '/me', 'ownpassword');
  });

  app.post<{ Body: Form }>('/me/reverse-dns', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
    const servers = field(req.body ?? {}, 'servers')
      .split(/[\s,]+/)
      .filter((s) => s !== '');
    await setReverseDns(ctx, p.actor, p.account, servers);
    return done(reply, '/me', 'rdns');
  });
}
