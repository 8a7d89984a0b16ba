/** @module admin/ui/static-tunnels: the static 6in4 tunnel's forms, on an account's page (operators, under
 *  /accounts/<name>/static-tunnel) and on /me (the account holder, under /me/static-tunnel, also on the
 *  self-service listener): create, set the endpoint, make an update key (shown once, in the page that
 *  answers), remove. Everything goes through StaticTunnels (broker/static-tunnels.ts), audited. */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { Account } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import { principalOf } from '../routes.js';
import type { SafeHtml } from '../html.js';
import type { Viewer } from '../views/layout.js';
import { staticTunnelCard } from '../views/static-tunnel.js';
import { accountUrl, renderAccount } from './accounts.js';
import { done, field, type Form } from './common.js';
import { publicTspHost, renderMe } from './me.js';

/** host:port account holders' dyndns2 clients should name (the public host, the self-service listener's
 *  configured port; placeholders where the configuration does not say), and whether it serves TLS. */
function updateServer(ctx: AdminContext): { server: string; tls: boolean } {
  const { selfService, admin } = ctx.config;
  const host = publicTspHost(ctx.config) ?? 'BROKER-ADDRESS';
  const listener = selfService.enabled ? selfService : admin;
  const port = listener.port === 0 ? 'PORT' : String(listener.port);
  return { server: `${host.includes(':') ? `[${host}]` : host}:${port}`, tls: listener.tls !== null };
}

export async function staticCardFor(
  ctx: AdminContext,
  v: Viewer,
  a: Account,
  base: string,
  newKey?: string,
): Promise<SafeHtml> {
  const st = await ctx.broker.statics.of(a.id);
  return staticTunnelCard(v, st && ctx.broker.statics.view(st), {
    base,
    username: a.username,
    update: updateServer(ctx),
    ...(newKey ? { newKey } : {}),
  });
}

interface Side {
  account: (req: FastifyRequest) => Promise<Account>;
  /** The page the forms return to. */
  back: (req: FastifyRequest) => string;
  render: (req: FastifyRequest, reply: FastifyReply, key: string) => Promise<FastifyReply>;
}

function registerSide(app: FastifyInstance, ctx: AdminContext, pattern: string, role: 'admin' | 'any', side: Side) {
  const statics = ctx.broker.statics;
  const config = { role };
  app.post<{ Body: Form }>(pattern, { config }, async (req, reply) => {
    const form = req.body ?? {};
    const endpoint = field(form, 'endpoint').trim();
    const st = await statics.create(principalOf(req).actor, await side.account(req), {
      hostname: field(form, 'hostname').trim(),
      endpoint: endpoint === '' ? null : endpoint,
      delegatePrefix: field(form, 'delegatePrefix') === '1',
    });
    return done(reply, side.back(req), 'staticcreated', st.hostname);
  });

  app.post<{ Body: Form }>(`${pattern}/endpoint`, { config }, async (req, reply) => {
    const endpoint = field(req.body ?? {}, 'endpoint').trim();
    const st = await statics.require(await side.account(req));
    const result = await statics.setEndpoint(principalOf(req).actor, st, endpoint, 'ui', { counted: role !== 'admin' });
    return done(reply, side.back(req), 'staticendpoint', `${endpoint} (${result})`);
  });

  app.post(`${pattern}/update-key`, { config }, async (req, reply) => {
    const st = await statics.require(await side.account(req));
    const key = await statics.newUpdateKey(principalOf(req).actor, st, { counted: role !== 'admin' });
    // shown once, in this reply: no redirect (the key must not sit in a URL or be rendered again)
    return side.render(req, reply.header('cache-control', 'no-store'), key);
  });

  app.post(`${pattern}/delete`, { config }, async (req, reply) => {
    const st = await statics.require(await side.account(req));
    await statics.remove(principalOf(req).actor, st);
    return done(reply, side.back(req), 'staticdeleted', st.hostname);
  });
}

export function registerStaticTunnelUi(app: FastifyInstance, ctx: AdminContext): void {
  const username = (req: FastifyRequest) => (req.params as { username: string }).username;
  registerSide(app, ctx, '/accounts/:username/static-tunnel', 'admin', {
    account: (req) => ctx.accounts.get(username(req)),
    back: (req) => accountUrl(username(req)),
    render: (req, reply, key) => renderAccount(ctx, req, reply, username(req), key),
  });
  registerSide(app, ctx, '/me/static-tunnel', 'any', {
    account: async (req) => {
      const p = principalOf(req);
      if (p.kind !== 'session') throw new BrokerError('API_FORBIDDEN', 'sign in as an account');
      return p.account;
    },
    back: () => '/me',
    render: (req, reply, key) => renderMe(ctx, req, reply, key),
  });
}
