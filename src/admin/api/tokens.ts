/** @module admin/api/tokens: API token routes under /api/v1 (admin only): list, create (the value is shown in
 *  that reply only), revoke. */

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import { commonErrors, errorSchema, noContent, tokenSchema } from '../schemas.js';
import { principalOf } from '../routes.js';
import { MAX_EXPIRY_DAYS } from '../tokens.js';

export function registerTokenApi(app: FastifyInstance, ctx: AdminContext): void {
  app.get(
    '/tokens',
    {
      schema: {
        summary: 'API tokens (never the token values)',
        tags: ['tokens'],
        response: { 200: { type: 'array', items: tokenSchema }, ...commonErrors },
      },
    },
    async () => ctx.tokens.list(),
  );

  app.post<{ Body: { name: string; expiresInDays?: number } }>(
    '/tokens',
    {
      schema: {
        summary: 'Create an API token; the reply is the only time its value is shown',
        tags: ['tokens'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            expiresInDays: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_EXPIRY_DAYS,
              description: 'refuse the token this many days from now (absent: never expires)',
            },
          },
        },
        response: {
          201: { ...tokenSchema, properties: { ...tokenSchema.properties, token: { type: 'string' } } },
          ...commonErrors,
          409: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const { token, record } = await ctx.tokens.create(principalOf(req).actor, req.body.name, {
        expiresInDays: req.body.expiresInDays,
      });
      return reply.code(201).send({ ...record, token });
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/tokens/:name',
    {
      schema: {
        summary: 'Revoke an API token',
        tags: ['tokens'],
        params: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
        },
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.tokens.revoke(principalOf(req).actor, req.params.name);
      return reply.code(204).send();
    },
  );
}
