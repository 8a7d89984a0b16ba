/** @module admin/api/tunnels: tunnel routes under /api/v1 (admin only): the list (live from the broker, or
 *  stored by state), one tunnel, its recent traffic, and kill (with an optional block). */

import type { FastifyInstance } from 'fastify';
import type { TunnelState } from '../../store/types.js';
import type { TunnelQuery } from '../../broker/tunnel-admin.js';
import { ratesFromSamples } from '../history.js';
import type { AdminContext } from '../context.js';
import {
  commonErrors,
  errorSchema,
  idParam,
  noContent,
  pageOf,
  pageQuery,
  rateSchema,
  sampleSchema,
  tunnelSchema,
} from '../schemas.js';
import { principalOf } from '../routes.js';
import { MAX_BLOCK_MINUTES } from '../../broker/blocks.js';

const STATES = ['live', 'all', 'offered', 'established', 'ended'] as const;

export function registerTunnelApi(app: FastifyInstance, ctx: AdminContext): void {
  registerTunnelList(app, ctx);
  registerTunnelDetail(app, ctx);
  registerTunnelKill(app, ctx);
}

function registerTunnelList(app: FastifyInstance, ctx: AdminContext): void {
  // the query is TunnelAdmin's own, with the states the schema below admits
  app.get<{ Querystring: Omit<TunnelQuery, 'state'> & { state: (typeof STATES)[number] } }>(
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
            type: { type: 'string', enum: ['v6v4', 'v6udpv4', 'v4v6'] },
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
    async (req) => ctx.broker.admin.list({ ...req.query, state: req.query.state as TunnelState | 'live' | 'all' }),
  );
}

/** One tunnel, and its recent traffic. */
function registerTunnelDetail(app: FastifyInstance, ctx: AdminContext): void {
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
    async (req) => ctx.broker.admin.get(req.params.id),
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
      const t = await ctx.broker.admin.get(req.params.id);
      const samples = t.live ? ctx.traffic.tunnelSamples(t.id) : [];
      return { live: t.live, samples, rates: ratesFromSamples(samples) };
    },
  );
}

function registerTunnelKill(app: FastifyInstance, ctx: AdminContext): void {
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
}
