/** @module admin/api/self: the caller's own routes under /api/v1: who am I, and changing one's own password
 *  (web session only; wrong current passwords count as failed sign-ins). */

import type { FastifyInstance } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { AdminContext } from '../context.js';
import { accountSchema, commonErrors, errorSchema, noContent, password } from '../schemas.js';
import { principalOf } from '../routes.js';

export function registerSelfApi(app: FastifyInstance, ctx: AdminContext): void {
  app.get(
    '/me',
    {
      config: { role: 'any' },
      schema: {
        summary: 'The caller: account (web session) or token name',
        tags: ['self'],
        response: {
          200: {
            type: 'object',
            properties: {
              kind: { type: 'string', enum: ['token', 'session'] },
              role: { type: 'string' },
              actor: { type: 'string' },
              account: accountSchema,
              csrfToken: { type: 'string', description: 'send as X-CSRF-Token on writes with the session cookie' },
            },
          },
          ...commonErrors,
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return p.kind === 'token'
        ? { kind: p.kind, role: p.role, actor: p.actor }
        : { kind: p.kind, role: p.role, actor: p.actor, account: p.account, csrfToken: p.csrfToken };
    },
  );

  app.put<{ Body: { currentPassword: string; newPassword: string } }>(
    '/me/password',
    {
      config: { role: 'any' },
      schema: {
        summary:
          "Change the signed-in account's own password (web session only); wrong current passwords count as failed sign-ins (429 when locked out)",
        tags: ['self'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['currentPassword', 'newPassword'],
          properties: { currentPassword: { type: 'string', maxLength: 255 }, newPassword: password },
        },
        response: { ...noContent, ...commonErrors, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      if (p.kind !== 'session')
        throw new BrokerError('API_FORBIDDEN', 'a token has no password; sign in as the account');
      await ctx.auth.throttledPasswordCheck(p.actor, p.account.username, req.ip, () =>
        ctx.accounts.changeOwnPassword(p.actor, p.account.username, req.body.currentPassword, req.body.newPassword),
      );
      return reply.code(204).send();
    },
  );
}
