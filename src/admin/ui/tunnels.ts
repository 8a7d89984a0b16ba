/** @module admin/ui/tunnels: the tunnel list (and its card alone, /tunnels/list, for the live refresh), a
 *  tunnel's page, and kill or kill and block. */

import type { FastifyInstance } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { AdminContext } from '../context.js';
import { ratesFromSamples } from '../history.js';
import { TUNNEL_PAGE, tunnelList, tunnelListQuery, tunnelPage, tunnelsPage } from '../views/tunnels.js';
import type { TunnelListQuery } from '../views/tunnels.js';
import { MAX_BLOCK_MINUTES } from '../../broker/blocks.js';
import { principalOf } from '../routes.js';
import { done, field, flashOf, page, viewer, type Form } from './common.js';

type Query = Record<string, string | undefined>;

/** A tunnel id from the path; anything else is a tunnel that does not exist. */
function tunnelIdOf(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id < 1) throw new BrokerError('API_NOT_FOUND', 'no such tunnel');
  return id;
}

/** Kill and block (the form's blockMinutes field): the same bounds as the API's; empty: kill only. */
function blockMinutesOf(form: Form): number | undefined {
  const raw = field(form, 'blockMinutes').trim();
  const blockMinutes = raw === '' ? undefined : Number(raw);
  if (
    blockMinutes !== undefined &&
    !(Number.isInteger(blockMinutes) && blockMinutes >= 1 && blockMinutes <= MAX_BLOCK_MINUTES)
  )
    throw new BrokerError('API_BAD_REQUEST', `blockMinutes must be a whole number from 1 to ${MAX_BLOCK_MINUTES}`);
  return blockMinutes;
}

export function registerTunnelUi(app: FastifyInstance, ctx: AdminContext): void {
  /** One page of the tunnel list, searched, filtered and sorted in the store (or over the live ones). An
   *  account filter naming no account shows nothing rather than an error page. */
  const listPage = async (q: TunnelListQuery) => {
    try {
      return await ctx.broker.admin.list({
        state: q.state,
        ...(q.type ? { type: q.type } : {}),
        ...(q.account ? { username: q.account } : {}),
        ...(q.search ? { search: q.search } : {}),
        sort: q.sort,
        order: q.order,
        offset: q.offset,
        limit: TUNNEL_PAGE,
      });
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'STORE_NOT_FOUND') return { items: [], total: 0 };
      throw err;
    }
  };

  app.get<{ Querystring: Query }>('/tunnels', async (req, reply) => {
    const q = tunnelListQuery(req.query);
    const list = await listPage(q);
    const recent =
      q.state === 'live' ? (await ctx.broker.admin.list({ state: 'ended', offset: 0, limit: 10 })).items : null;
    return page(reply, tunnelsPage(viewer(principalOf(req)), q, list, recent, ctx.clock.now(), flashOf(req)));
  });

  // the list alone, for the page's live refresh (assets.ts)
  app.get<{ Querystring: Query }>('/tunnels/list', async (req, reply) => {
    const q = tunnelListQuery(req.query);
    return page(reply, tunnelList(viewer(principalOf(req)), q, await listPage(q), ctx.clock.now()));
  });

  app.get<{ Params: { id: string } }>('/tunnels/:id', async (req, reply) => {
    const id = tunnelIdOf(req.params.id);
    const t = await ctx.broker.admin.get(id);
    const samples = t.live ? ctx.traffic.tunnelSamples(id) : [];
    return page(
      reply,
      tunnelPage(viewer(principalOf(req)), t, ctx.clock.now(), {
        points: ratesFromSamples(samples),
        from: samples[0]?.at ?? ctx.clock.now(),
        to: ctx.clock.now(),
      }),
    );
  });

  app.post<{ Params: { id: string }; Body: Form }>('/tunnels/:id/kill', async (req, reply) => {
    const id = tunnelIdOf(req.params.id);
    const blockMinutes = blockMinutesOf(req.body ?? {});
    await ctx.broker.killTunnel(id, principalOf(req).actor, blockMinutes ? { blockMinutes } : {});
    return blockMinutes
      ? done(reply, '/tunnels', 'killblocked', `${id}:${blockMinutes}`)
      : done(reply, '/tunnels', 'killed', String(id));
  });
}
