/** @module admin/api/accounts: account routes under /api/v1 (admin only): list, show, create, set a password,
 *  disable or enable, set limits, delete. Disabling and deleting end the account's live tunnels (AccountService). */

import type { FastifyInstance } from 'fastify';
import type { AccountLimits, Role } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import {
  accountSchema,
  commonErrors,
  errorSchema,
  limitsSchema,
  noContent,
  pageOf,
  pageQuery,
  password,
  usernameParam,
} from '../schemas.js';
import { checkLimits, principalOf } from '../routes.js';

export function registerAccountApi(app: FastifyInstance, ctx: AdminContext): void {
  registerAccountCollection(app, ctx);
  registerAccountChanges(app, ctx);
}

/** List, create, show. */
function registerAccountCollection(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: { search?: string; offset: number; limit: number } }>(
    '/accounts',
    {
      schema: {
        summary: 'List accounts, ordered by username',
        tags: ['accounts'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { search: { type: 'string', maxLength: 64, description: 'username substring' }, ...pageQuery },
        },
        response: { 200: pageOf(accountSchema), ...commonErrors },
      },
    },
    async (req) => ctx.accounts.list(req.query),
  );

  app.post<{ Body: { username: string; password: string; role?: Role; limits?: AccountLimits; webOnly?: boolean } }>(
    '/accounts',
    {
      schema: {
        summary: 'Create an account',
        tags: ['accounts'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            password,
            role: { type: 'string', enum: ['admin', 'user'], default: 'user' },
            limits: limitsSchema,
            webOnly: {
              type: 'boolean',
              default: false,
              description: 'web UI and API only: no DIGEST-MD5 secret is stored, so no DIGEST-MD5 TSP login',
            },
          },
        },
        response: { 201: accountSchema, ...commonErrors, 409: errorSchema },
      },
    },
    async (req, reply) => {
      checkLimits(req.body.limits);
      const account = await ctx.accounts.create(principalOf(req).actor, req.body);
      return reply.code(201).send(account);
    },
  );

  app.get<{ Params: { username: string } }>(
    '/accounts/:username',
    {
      schema: {
        summary: 'Show an account',
        tags: ['accounts'],
        params: usernameParam,
        response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => ctx.accounts.get(req.params.username),
  );
}

/** Password, disable or enable, limits, delete. */
function registerAccountChanges(app: FastifyInstance, ctx: AdminContext): void {
  app.put<{ Params: { username: string }; Body: { password: string } }>(
    '/accounts/:username/password',
    {
      schema: {
        summary: "Set an account's password (argon2id hash and DIGEST-MD5 secret together)",
        tags: ['accounts'],
        params: usernameParam,
        body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password } },
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.accounts.setPassword(principalOf(req).actor, req.params.username, req.body.password);
      return reply.code(204).send();
    },
  );

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    app.post<{ Params: { username: string } }>(
      `/accounts/:username/${verb}`,
      {
        schema: {
          summary: disabled ? 'Disable an account and end its live tunnels' : 'Enable an account',
          tags: ['accounts'],
          params: usernameParam,
          response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
        },
      },
      async (req) => ctx.accounts.setDisabled(principalOf(req).actor, req.params.username, disabled),
    );
  }

  app.put<{ Params: { username: string }; Body: AccountLimits }>(
    '/accounts/:username/limits',
    {
      schema: {
        summary: "Replace an account's limits (absent fields: the broker's defaults)",
        tags: ['accounts'],
        params: usernameParam,
        body: limitsSchema,
        response: { 200: accountSchema, ...commonErrors, 404: errorSchema },
      },
    },
    async (req) => {
      checkLimits(req.body);
      return ctx.accounts.setLimits(principalOf(req).actor, req.params.username, req.body);
    },
  );

  app.delete<{ Params: { username: string } }>(
    '/accounts/:username',
    {
      schema: {
        summary: 'Delete an account: ends its live tunnels and releases its addresses',
        tags: ['accounts'],
        params: usernameParam,
        response: { ...noContent, ...commonErrors, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await ctx.accounts.delete(principalOf(req).actor, req.params.username);
      return reply.code(204).send();
    },
  );
}
