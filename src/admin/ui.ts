/** @module admin/ui: the web UI's routes: server-rendered pages (admin/views/) and HTML forms, one file a
 *  concern in admin/ui/. Each route says its role in `config.role` ('public', 'any' or 'admin'; admin by
 *  default). The onRequest hook authenticates from the session cookie; a missing session is thrown as
 *  API_UNAUTHORIZED, which the one error handler (admin/server.ts) turns into a redirect to /login, and a wrong
 *  role into a 403 page. POST forms must carry the session's CSRF token in `_csrf` (checked in preHandler, once
 *  the body is parsed); the login form carries a token the server issued and set in a cookie (admin/auth.ts).
 *  Successful POSTs redirect (303) so a reload does not repeat them. */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from './context.js';
import { authenticate } from './routes.js';
import { field, type Form } from './ui/common.js';
import { registerAssetRoutes, registerSessionRoutes } from './ui/session.js';
import { registerDashboardUi } from './ui/dashboard.js';
import { registerTunnelUi } from './ui/tunnels.js';
import { registerAccountUi } from './ui/accounts.js';
import { registerAuditUi } from './ui/audit.js';
import { registerNodesUi } from './ui/nodes.js';
import { registerTokenUi } from './ui/tokens.js';
import { registerMeUi } from './ui/me.js';
import { registerStaticTunnelUi } from './ui/static-tunnels.js';

export function registerUi(app: FastifyInstance, ctx: AdminContext): void {
  app.addHook('onRequest', async (req) => {
    await authenticate(ctx, req, { unauthorized: 'sign in first', forbidden: 'this page is for administrators' });
  });
  app.addHook('preHandler', async (req) => {
    if (req.method !== 'POST' || !req.principal) return;
    ctx.auth.checkCsrf(req.principal, field((req.body ?? {}) as Form, '_csrf'));
  });

  registerAssetRoutes(app);
  registerSessionRoutes(app, ctx);
  registerDashboardUi(app, ctx);
  registerTunnelUi(app, ctx);
  registerAccountUi(app, ctx);
  registerAuditUi(app, ctx);
  registerNodesUi(app, ctx);
  registerTokenUi(app, ctx);
  registerMeUi(app, ctx);
  registerStaticTunnelUi(app, ctx);
}
