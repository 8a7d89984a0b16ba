/** @module admin/ui/audit: the audit log page; its filters come from the query string, typed as the form has
 *  them (UTC days), and are turned into the store's filter here. */

import type { FastifyInstance } from 'fastify';
import type { AuditFilter } from '../../store/types.js';
import type { AdminContext } from '../context.js';
import { auditPage, type AuditFilterForm } from '../views/audit.js';
import { principalOf } from '../routes.js';
import { offsetOf, page, viewer } from './common.js';

/** Events a page of the log shows. */
const AUDIT_PAGE = 50;
const DAY_MS = 86_400_000;

/** The filters as the form shows them again: bounded text, and days only when they are YYYY-MM-DD. */
function auditForm(query: Record<string, string | undefined>): AuditFilterForm {
  const text = (k: string, max: number) => (query[k] ?? '').trim().slice(0, max);
  const day = (k: string) => (/^\d{4}-\d{2}-\d{2}$/.test(query[k] ?? '') ? query[k]! : '');
  return {
    action: text('action', 64),
    actor: text('actor', 128),
    target: text('target', 128),
    from: day('from'),
    to: day('to'),
  };
}

/** The store's filter: the actor as a substring, the days as [from 00:00, the day after "to") in UTC. */
function auditFilter(f: AuditFilterForm): AuditFilter {
  const from = f.from ? Date.parse(`${f.from}T00:00:00Z`) : NaN;
  const to = f.to ? Date.parse(`${f.to}T00:00:00Z`) + DAY_MS : NaN; // the whole "to" day
  return {
    ...(f.action ? { action: f.action } : {}),
    ...(f.actor ? { actorContains: f.actor } : {}),
    ...(f.target ? { target: f.target } : {}),
    ...(Number.isFinite(from) ? { from } : {}),
    ...(Number.isFinite(to) ? { to } : {}),
  };
}

export function registerAuditUi(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: Record<string, string | undefined> }>('/audit', async (req, reply) => {
    const offset = offsetOf(req.query.offset);
    const limit = AUDIT_PAGE;
    const f = auditForm(req.query);
    const list = await ctx.store.listAudit({ offset, limit, ...auditFilter(f) });
    return page(reply, auditPage(viewer(principalOf(req)), { ...list, offset, limit, ...f }));
  });
}
