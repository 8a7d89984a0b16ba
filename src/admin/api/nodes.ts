/** @module admin/api/nodes: the cluster's nodes under /api/v1 (admin only; docs/cluster.md): list them with
 *  whether each is alive, and drain or undrain one. A drain is a row change and a message, so the node
 *  redirects new sessions at once, whichever node's API was asked. With SQLite the broker is the only node and
 *  there is no registry: the list says so and a drain is refused. */

import type { FastifyInstance } from 'fastify';
import { NODE_NAME } from '../../config/cluster.js';
import { BrokerError } from '../../errors.js';
import { nodeAlive } from '../../store/node-types.js';
import type { AdminContext } from '../context.js';
import { commonErrors, errorSchema, noContent } from '../schemas.js';
import { principalOf } from '../routes.js';

export const nodeSchema = {
  type: 'object',
  required: ['name', 'alive', 'draining', 'tunnels', 'heartbeatAt'],
  properties: {
    name: { type: 'string' },
    ipv4: { type: ['string', 'null'] },
    ipv6: { type: ['string', 'null'] },
    capacity: { type: ['integer', 'null'] },
    draining: { type: 'boolean' },
    tunnels: { type: 'integer', description: 'live tunnels at its last heartbeat' },
    startedAt: { type: 'integer' },
    heartbeatAt: { type: 'integer' },
    alive: { type: 'boolean', description: 'heard from within cluster.deadAfterS' },
  },
} as const;

const nameParam = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: NODE_NAME.source } },
} as const;

/** The nodes with whether each is alive now (by this node's cluster.deadAfterS); none on SQLite. */
export async function listNodes(ctx: AdminContext) {
  const clustered = ctx.config.store.driver === 'postgres';
  const now = ctx.clock.now();
  const items = clustered ? await ctx.store.listNodes() : [];
  const deadAfterS = ctx.config.cluster.deadAfterS;
  return {
    clustered,
    self: ctx.store.nodeId,
    items: items.map((n) => ({ ...n, alive: nodeAlive(n, deadAfterS, now) })),
  };
}

/** Drains or undrains a node (the node hears it at once) and audits it. STORE_CONFLICT on SQLite,
 *  STORE_NOT_FOUND for an unknown node, API_BAD_REQUEST for a name no node can have. */
export async function setNodeDraining(ctx: AdminContext, name: string, draining: boolean, actor: string) {
  if (ctx.config.store.driver !== 'postgres')
    throw new BrokerError('STORE_CONFLICT', 'a SQLite store has one broker and no nodes to drain');
  if (!NODE_NAME.test(name)) throw new BrokerError('API_BAD_REQUEST', `not a node name: ${name.slice(0, 80)}`);
  if (!(await ctx.store.setNodeDraining(name, draining)))
    throw new BrokerError('STORE_NOT_FOUND', `no node named ${name}`);
  const action = draining ? 'node.drain' : 'node.undrain';
  await ctx.store.addAudit({ at: ctx.clock.now(), actor, action, target: name, detail: null });
}

export function registerNodeApi(app: FastifyInstance, ctx: AdminContext): void {
  app.get(
    '/nodes',
    {
      schema: {
        summary: 'The broker nodes sharing the store: alive or dead, draining, tunnels, capacity',
        tags: ['nodes'],
        response: {
          200: {
            type: 'object',
            required: ['clustered', 'self', 'items'],
            properties: {
              clustered: { type: 'boolean', description: 'false: a SQLite store, whose one broker is the only node' },
              self: { type: 'string', description: 'the node answering' },
              items: { type: 'array', items: nodeSchema },
            },
          },
          ...commonErrors,
        },
      },
    },
    async () => listNodes(ctx),
  );

  for (const [verb, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const)
    app.post<{ Params: { name: string } }>(
      `/nodes/:name/${verb}`,
      {
        schema: {
          summary: draining
            ? 'Drain a node: it takes no new tunnels and redirects new sessions to other live nodes (TSP 1200)'
            : 'Undrain a node: it takes new tunnels again',
          tags: ['nodes'],
          params: nameParam,
          response: { ...noContent, ...commonErrors, 404: errorSchema, 409: errorSchema },
        },
      },
      async (req, reply) => {
        await setNodeDraining(ctx, req.params.name, draining, principalOf(req).actor);
        return reply.code(204).send();
      },
    );
}
