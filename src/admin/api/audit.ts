/** @module admin/api/audit: the audit log under /api/v1 (admin only), newest first, filtered. */

import type { FastifyInstance } from 'fastify';
import type { AuditFilter } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import { auditSchema, commonErrors, pageOf, pageQuery } from '../schemas.js';

export function registerAuditApi(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: AuditFilter & { offset: number; limit: number } }>(
    '/audit',
    {
      schema: {
        summary: 'Audit events, newest first, filtered by action, actor, target and time',
        tags: ['audit'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            action: { type: 'string', maxLength: 64, description: 'exact action, e.g. account.create' },
            actor: { type: 'string', maxLength: 128, description: 'exact actor, e.g. admin:root' },
            actorContains: { type: 'string', maxLength: 128, description: 'case-insensitive substring of the actor' },
            target: { type: 'string', maxLength: 128, description: 'case-insensitive substring of the target' },
            from: { type: 'integer', description: 'at or after this time (Unix milliseconds)' },
            to: { type: 'integer', description: 'before this time (Unix milliseconds)' },
            ...pageQuery,
          },
        },
        response: { 200: pageOf(auditSchema), ...commonErrors },
      },
    },
    async (req) => ctx.store.listAudit(req.query),
  );
}
