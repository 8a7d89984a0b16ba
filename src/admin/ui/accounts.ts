/** @module admin/ui/accounts: the account list and creation, an account's page, and its forms: password,
 *  disable or enable, limits, delete. */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { AccountLimits } from '../../store/types.js';
import { TUNNEL_TYPES, type TunnelType } from '../../tunnel-model.js';
import type { AdminContext } from '../context.js';
import { accountPage, accountsPage } from '../views/accounts.js';
import { checkLimits, principalOf } from '../routes.js';
import { done, field, flashOf, offsetOf, page, viewer, type Form } from './common.js';
import { staticCardFor } from './static-tunnels.js';

/** Accounts a page of the list shows. */
const ACCOUNT_PAGE = 50;

export const accountUrl = (u: string) => `/accounts/${encodeURIComponent(u)}`;

function parsePrefixLen(s: string, name: string): number | undefined {
  if (s === '') return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 16 || n > 64)
    throw new BrokerError('API_BAD_REQUEST', `${name} must be a whole number from 16 to 64`);
  return n;
}

/** The limits form: ticked tunnel types and prefix lengths; what is left empty is the broker's default. */
function limitsOf(form: Form): AccountLimits {
  const raw = form.tunnelTypes;
  const types = (Array.isArray(raw) ? raw : raw ? [raw] : []).filter((t): t is TunnelType =>
    (TUNNEL_TYPES as readonly string[]).includes(t),
  );
  const limits: AccountLimits = {};
  if (types.length) limits.tunnelTypes = [...new Set(types)];
  const min = parsePrefixLen(field(form, 'minPrefixLen'), 'minPrefixLen');
  const max = parsePrefixLen(field(form, 'maxPrefixLen'), 'maxPrefixLen');
  if (min !== undefined) limits.minPrefixLen = min;
  if (max !== undefined) limits.maxPrefixLen = max;
  checkLimits(limits);
  return limits;
}

/** An account's page; `newKey`: its static tunnel's update key just made, shown this once. */
export async function renderAccount(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  username: string,
  newKey?: string,
): Promise<FastifyReply> {
  const a = await ctx.accounts.get(username);
  const v = viewer(principalOf(req));
  const tunnels = await ctx.broker.admin.list({ state: 'all', username: a.username, offset: 0, limit: 20 });
  const card = await staticCardFor(ctx, v, a, `${accountUrl(a.username)}/static-tunnel`, newKey);
  return page(reply, accountPage(v, a, tunnels.items, ctx.clock.now(), flashOf(req), card));
}

export function registerAccountUi(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: { search?: string; offset?: string } }>('/accounts', async (req, reply) => {
    const search = (req.query.search ?? '').slice(0, 64);
    const offset = offsetOf(req.query.offset);
    const limit = ACCOUNT_PAGE;
    const list = await ctx.accounts.list({ ...(search ? { search } : {}), offset, limit });
    return page(reply, accountsPage(viewer(principalOf(req)), { ...list, search, offset, limit }, flashOf(req)));
  });

  app.post<{ Body: Form }>('/accounts', async (req, reply) => {
    const form = req.body ?? {};
    const role = field(form, 'role') === 'admin' ? 'admin' : 'user';
    const a = await ctx.accounts.create(principalOf(req).actor, {
      username: field(form, 'username'),
      password: field(form, 'password'),
      role,
    });
    return done(reply, accountUrl(a.username), 'created', a.username);
  });

  app.get<{ Params: { username: string } }>('/accounts/:username', async (req, reply) =>
    renderAccount(ctx, req, reply, req.params.username),
  );

  app.post<{ Params: { username: string }; Body: Form }>('/accounts/:username/password', async (req, reply) => {
    await ctx.accounts.setPassword(principalOf(req).actor, req.params.username, field(req.body ?? {}, 'password'));
    return done(reply, accountUrl(req.params.username), 'password', req.params.username);
  });

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    app.post<{ Params: { username: string } }>(`/accounts/:username/${verb}`, async (req, reply) => {
      await ctx.accounts.setDisabled(principalOf(req).actor, req.params.username, disabled);
      return done(reply, accountUrl(req.params.username), disabled ? 'disabled' : 'enabled', req.params.username);
    });
  }

  app.post<{ Params: { username: string }; Body: Form }>('/accounts/:username/limits', async (req, reply) => {
    const limits = limitsOf(req.body ?? {});
    await ctx.accounts.setLimits(principalOf(req).actor, req.params.username, limits);
    return done(reply, accountUrl(req.params.username), 'limits', req.params.username);
  });

  app.post<{ Params: { username: string } }>('/accounts/:username/delete', async (req, reply) => {
    await ctx.accounts.delete(principalOf(req).actor, req.params.username);
    return done(reply, '/accounts', 'deleted', req.params.username);
  });
}
