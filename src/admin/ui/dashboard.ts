/** @module admin/ui/dashboard: the dashboard (/ and its live part, /dashboard/live) and the pools page. */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import { rangeOf, rangeRates, topTalkers, type RangeKey } from '../history.js';
import { dashboardLive, dashboardPage, type DashboardData } from '../views/dashboard.js';
import { poolsPage } from '../views/pools.js';
import { principalOf } from '../routes.js';
import { page, viewer } from './common.js';

export function registerDashboardUi(app: FastifyInstance, ctx: AdminContext): void {
  const dashboardData = async (range: RangeKey): Promise<DashboardData> => {
    const byType = ctx.broker.admin.liveByType();
    return {
      liveTunnels: byType.v6v4 + byType.v6udpv4,
      byType,
      halfOpen: ctx.sessionCounts().halfOpen,
      accounts: (await ctx.store.listAccounts({ limit: 0 })).total,
      history: await rangeRates(ctx.store, ctx.traffic, ctx.clock.now(), range),
      totals: ctx.traffic.update(),
      talkers: topTalkers(ctx.traffic, (ids) => ctx.broker.tunnels.listOf(ids), 5),
      pools: await ctx.poolUsage(),
    };
  };

  app.get<{ Querystring: { range?: string } }>('/', { config: { role: 'any' } }, async (req, reply) => {
    const p = principalOf(req);
    if (p.role !== 'admin') return reply.redirect('/me', 303);
    return page(reply, dashboardPage(viewer(p), await dashboardData(rangeOf(req.query.range))));
  });

  app.get<{ Querystring: { range?: string } }>('/dashboard/live', async (req, reply) =>
    page(reply, dashboardLive(await dashboardData(rangeOf(req.query.range)))),
  );

  app.get('/pools', async (req, reply) => page(reply, poolsPage(viewer(principalOf(req)), await ctx.poolUsage())));
}
