/** @module admin/ui/tokens: the API tokens page, creating a token (its value shown once, in that reply) and
 *  revoking one. */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import { tokensPage } from '../views/tokens.js';
import { principalOf } from '../routes.js';
import { done, field, flashOf, page, viewer, type Form } from './common.js';

export function registerTokenUi(app: FastifyInstance, ctx: AdminContext): void {
  app.get('/tokens', async (req, reply) =>
    page(
      reply,
      tokensPage(viewer(principalOf(req)), await ctx.tokens.list(), undefined, flashOf(req), ctx.clock.now()),
    ),
  );

  app.post<{ Body: Form }>('/tokens', async (req, reply) => {
    const p = principalOf(req);
    const form = req.body ?? {};
    const days = field(form, 'expiresInDays').trim();
    const { token, record } = await ctx.tokens.create(p.actor, field(form, 'name'), {
      expiresInDays: days === '' ? undefined : Number(days),
    });
    // shown once, in this reply: no redirect (the token must not sit in a URL or be re-rendered later)
    return page(
      reply.header('cache-control', 'no-store'),
      tokensPage(viewer(p), await ctx.tokens.list(), { name: record.name, token }, undefined, ctx.clock.now()),
    );
  });

  app.post<{ Params: { name: string } }>('/tokens/:name/revoke', async (req, reply) => {
    await ctx.tokens.revoke(principalOf(req).actor, req.params.name);
    return done(reply, '/tokens', 'revoked', req.params.name);
  });
}
