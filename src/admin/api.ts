/** @module admin/api: the REST API under /api/v1. Each route declares its JSON Schemas (validated by fastify's
 *  ajv, published by admin/openapi.ts) and its role in `config.role` (admin/routes.ts): 'public' (no
 *  credential), 'any' (any signed-in account or token) or 'admin'. The onRequest hook authenticates, checks the
 *  role and, for cookie-authenticated writes, the X-CSRF-Token header. Errors are thrown, never sent here: the
 *  one error handler in admin/server.ts turns them into `{ code, message }` replies. The routes are in
 *  admin/api/, one file a concern. */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from './context.js';
import { authenticate } from './routes.js';
import { registerSelfApi } from './api/self.js';
import { registerAccountApi } from './api/accounts.js';
import { registerReverseDnsApi } from './api/reverse-dns.js';
import { registerTunnelApi } from './api/tunnels.js';
import { registerStatsApi } from './api/stats.js';
import { registerAuditApi } from './api/audit.js';
import { registerTokenApi } from './api/tokens.js';
import { registerStaticTunnelApi } from './api/static-tunnels.js';
import { registerNodeApi } from './api/nodes.js';

export function registerApi(app: FastifyInstance, ctx: AdminContext): void {
  app.addHook('onRequest', async (req) => {
    const p = await authenticate(ctx, req, {
      unauthorized: 'authentication required: a bearer token or a web session',
      forbidden: 'this needs the admin role',
    });
    if (p && req.method !== 'GET' && req.method !== 'HEAD') {
      const header = req.headers['x-csrf-token'];
      ctx.auth.checkCsrf(p, typeof header === 'string' ? header : undefined);
    }
  });

  registerSelfApi(app, ctx);
  registerAccountApi(app, ctx);
  registerReverseDnsApi(app, ctx);
  registerTunnelApi(app, ctx);
  registerStatsApi(app, ctx);
  registerAuditApi(app, ctx);
  registerTokenApi(app, ctx);
  registerStaticTunnelApi(app, ctx);
  registerNodeApi(app, ctx);
}
