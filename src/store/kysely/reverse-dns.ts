/** @module store/kysely/reverse-dns: ReverseDnsStore over Kysely (store/types.ts, schema version 7). */

import type { Selectable } from 'kysely';
import type { ReverseDelegationsTable } from '../schema.js';
import { REVERSE_PENDING, type ReverseDelegation, type ReverseDnsStore } from '../types.js';
import type { Runner } from './runner.js';

const list = (s: string): string[] => (s === '' ? [] : s.split(','));

function toDelegation(r: Selectable<ReverseDelegationsTable>): ReverseDelegation {
  return {
    id: Number(r.id),
    accountId: r.account_id === null ? null : Number(r.account_id),
    servers: list(r.servers),
    published: list(r.published),
    error: r.error,
    updatedAt: Number(r.updated_at),
  };
}

export function reverseDnsStore(run: Runner): ReverseDnsStore {
  return {
    getReverseDelegation(accountId) {
      return run.read('getReverseDelegation', async (db) => {
        const row = await db
          .selectFrom('reverse_delegations')
          .selectAll()
          .where('account_id', '=', accountId)
          .executeTakeFirst();
        return row && toDelegation(row);
      });
    },

    setReverseServers(accountId, servers, at) {
      return run.write('setReverseServers', async (trx) => {
        const row = await trx
          .insertInto('reverse_delegations')
          .values({
            account_id: accountId,
            servers: servers.join(','),
            published: '',
            error: REVERSE_PENDING,
            updated_at: at,
          })
          .onConflict((oc) =>
            oc.column('account_id').doUpdateSet({ servers: servers.join(','), error: REVERSE_PENDING, updated_at: at }),
          )
          .returningAll()
          .executeTakeFirstOrThrow();
        return toDelegation(row);
      });
    },

    async markReverseDelegation(id, published, error, at) {
      await run.write('markReverseDelegation', (trx) =>
        trx
          .updateTable('reverse_delegations')
          .set({ published: published.join(','), error, updated_at: at })
          .where('id', '=', id)
          .execute(),
      );
    },

    pendingReverseDelegations(limit) {
      return run.read('pendingReverseDelegations', async (db) => {
        const rows = await db
          .selectFrom('reverse_delegations')
          .selectAll()
          .where((eb) => eb.or([eb('account_id', 'is', null), eb('error', 'is not', null)]))
          .orderBy('updated_at')
          .orderBy('id')
          .limit(limit)
          .execute();
        return rows.map(toDelegation);
      });
    },

    async deleteReverseDelegation(id) {
      await run.write('deleteReverseDelegation', (trx) =>
        trx.deleteFrom('reverse_delegations').where('id', '=', id).execute(),
      );
    },
  };
}
