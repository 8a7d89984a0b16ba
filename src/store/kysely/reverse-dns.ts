/** @module store/kysely/reverse-dns: ReverseDnsStore over Kysely (store/types.ts, schema version 7). */

import { sql, type Selectable } from 'kysely';
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
    publishedServers: list(r.published_servers),
    error: r.error,
    updatedAt: Number(r.updated_at),
  };
}

export function reverseDnsStore(run: Runner): ReverseDnsStore {
  const byColumn = (name: string, column: 'account_id' | 'id', value: number) =>
    run.read(name, async (db) => {
      const row = await db.selectFrom('reverse_delegations').selectAll().where(column, '=', value).executeTakeFirst();
      return row && toDelegation(row);
    });
  return {
    getReverseDelegation: (accountId) => byColumn('getReverseDelegation', 'account_id', accountId),
    getReverseDelegationById: (id) => byColumn('getReverseDelegationById', 'id', id),

    setReverseServers(accountId, servers, at) {
      const joined = servers.join(',');
      return run.write('setReverseServers', async (trx) => {
        const row = await trx
          .insertInto('reverse_delegations')
          .values({
            account_id: accountId,
            servers: joined,
            published: '',
            published_servers: '',
            error: REVERSE_PENDING,
            updated_at: at,
          })
          .onConflict((oc) =>
            oc.column('account_id').doUpdateSet({ servers: joined, error: REVERSE_PENDING, updated_at: at }),
          )
          .returningAll()
          .executeTakeFirstOrThrow();
        return toDelegation(row);
      });
    },

    /** One statement: the outcome's error only if the wish it was made for is still the row's. */
    async markReverseDelegation(id, o, at) {
      await run.write('markReverseDelegation', (trx) =>
        trx
          .updateTable('reverse_delegations')
          .set({
            published: o.published.join(','),
            published_servers: o.publishedServers.join(','),
            error: sql<
              string | null
            >`case when servers = ${o.servers.join(',')} then ${o.error} else ${REVERSE_PENDING} end`,
            updated_at: at,
          })
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
