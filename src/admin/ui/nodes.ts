/** @module admin/ui/nodes: the nodes page and its drain and undrain forms (the same change as the API's). */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import { listNodes, setNodeDraining } from '../api/nodes.js';
import { nodesPage } from '../views/nodes.js';
import { principalOf } from '../routes.js';
import { done, flashOf, page, viewer } from './common.js';

export function registerNodesUi(app: FastifyInstance, ctx: AdminContext): void {
  app.get('/nodes', async (req, reply) => {
    const list = await listNodes(ctx);
    return page(
      reply,
      nodesPage(viewer(principalOf(req)), {
        clustered: list.clustered,
        self: list.self,
        now: ctx.clock.now(),
        nodes: list.items,
        ...(flashOf(req) ? { flash: flashOf(req)! } : {}),
      }),
    );
  });
  for (const [verb, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const)
    app.post<{ Params: { name: string } }>(`/nodes/:name/${verb}`, async (req, reply) => {
      await setNodeDraining(ctx, req.params.name, draining, principalOf(req).actor);
      return done(reply, '/nodes', verb === 'drain' ? 'drained' : 'undrained', req.params.name);
    });
}
