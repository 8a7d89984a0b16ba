/** @module store/kysely/audit: AuditStore over Kysely (store/types.ts). */

import { sql, type Expression, type ExpressionBuilder, type Selectable, type SqlBool } from 'kysely';
import type { AuditEvent, AuditFilter, AuditStore } from '../types.js';
import type { AuditTable, Database } from '../schema.js';
import type { Dialect } from '../migrations.js';
import { notifyCluster } from './nodes.js';
import { ANNOUNCED_AUDIT_ACTIONS } from '../node-types.js';
import { likeSubstring, page, type Runner } from './runner.js';

export function auditStore(run: Runner, dialect: Dialect): AuditStore {
  return {
    addAudit(e) {
      return run.write('addAudit', async (trx) => {
        await trx
          .insertInto('audit')
          .values({
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail === null ? null : JSON.stringify(e.detail),
          })
          .execute();
        // the broker nodes follow the trail (broker/audit-follow.ts): they read it now instead of at their next sweep
        if (ANNOUNCED_AUDIT_ACTIONS.has(e.action))
          await notifyCluster(trx, dialect, { kind: 'audit', action: e.action });
      });
    },

    pruneAudit(before, limit) {
      return run.write('pruneAudit', async (trx) => {
        const r = await trx
          .deleteFrom('audit')
          .where('id', 'in', (eb) =>
            eb
              .selectFrom('audit')
              .select('id')
              .where('at', '<', before)
              .orderBy('at')
              .orderBy('id')
              .limit(Math.max(0, Math.trunc(limit))),
          )
          .executeTakeFirst();
        return Number(r.numDeletedRows);
      });
    },

    /** Newest first (at, then id). `action` and `actor` match exactly, `actorContains` and `target` as
     *  case-insensitive substrings; `from` is inclusive, `to` exclusive. */
    listAudit(q) {
      return run.read('listAudit', async (db) => {
        const where = auditWhere(q);
        const { limit, offset } = page(q);
        const [count, rows] = await Promise.all([
          db
            .selectFrom('audit')
            .select((eb) => eb.fn.countAll().as('n'))
            .where(where)
            .executeTakeFirstOrThrow(),
          db
            .selectFrom('audit')
            .selectAll()
            .where(where)
            .orderBy('at', 'desc')
            .orderBy('id', 'desc')
            .limit(limit)
            .offset(offset)
            .execute(),
        ]);
        return { items: rows.map(toAuditEvent), total: Number(count.n) };
      });
    },
  };
}

/** The conditions of an AuditFilter (all must hold). */
function auditWhere(q: AuditFilter) {
  return (eb: ExpressionBuilder<Database, 'audit'>): Expression<SqlBool> => {
    const conds: Expression<SqlBool>[] = [];
    if (q.action !== undefined) conds.push(eb('action', '=', q.action));
    if (q.actor !== undefined) conds.push(eb('actor', '=', q.actor));
    if (q.actorContains)
      conds.push(sql<SqlBool>`lower(${eb.ref('actor')}) like ${likeSubstring(q.actorContains)} escape '\\'`);
    if (q.target) conds.push(sql<SqlBool>`lower(${eb.ref('target')}) like ${likeSubstring(q.target)} escape '\\'`);
    if (q.from !== undefined) conds.push(eb('at', '>=', q.from));
    if (q.to !== undefined) conds.push(eb('at', '<', q.to));
    return eb.and(conds);
  };
}

function toAuditEvent(r: Selectable<AuditTable>): AuditEvent {
  return {
    id: Number(r.id),
    at: Number(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
  };
}
