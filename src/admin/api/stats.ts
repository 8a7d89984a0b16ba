/** @module admin/api/stats: what the dashboard shows, under /api/v1 (admin only): the pools' usage and the
 *  figures (live tunnels by type, traffic of a range, top talkers). */

import type { FastifyInstance } from 'fastify';
import { RANGE_KEYS, rangeOf, rangeRates, topTalkers } from '../history.js';
import type { AdminContext } from '../context.js';
import { commonErrors, rateSchema, sampleSchema } from '../schemas.js';

/** The /stats reply: what the dashboard shows (admin/views/dashboard.ts), as numbers. */
const statsSchema = {
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
} as const;

export function registerStatsApi(app: FastifyInstance, ctx: AdminContext): void {
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
          200: statsSchema,
          ...commonErrors,
        },
      },
    },
    async (req) => {
      const byType = ctx.broker.admin.liveByType();
      const range = rangeOf(req.query.range);
      return {
        liveTunnels: byType.v6v4 + byType.v6udpv4,
        byType,
        traffic: ctx.traffic.samples(),
        history: await rangeRates(ctx.store, ctx.traffic, ctx.clock.now(), range),
        topTalkers: topTalkers(ctx.traffic, (ids) => ctx.broker.tunnels.listOf(ids), 10).map((t) => ({
          id: t.tunnel.id,
          username: t.tunnel.username,
          rxBytes: t.rxBytes,
          txBytes: t.txBytes,
          spanMs: t.spanMs,
        })),
      };
    },
  );
}
