/** @module store/kysely/static-tunnels: StaticTunnelStore over Kysely (store/static-types.ts, schema version 8). */

import type { Kysely, Selectable } from 'kysely';
import { BrokerError } from '../../errors.js';
import type { StaticTunnel, StaticTunnelStore } from '../static-types.js';
import type { Database, StaticTunnelsTable } from '../schema.js';
import type { Runner } from './runner.js';

type StaticRow = Selectable<StaticTunnelsTable> & { username: string };

function query(db: Kysely<Database>) {
  return db
    .selectFrom('static_tunnels')
    .innerJoin('accounts', 'accounts.id', 'static_tunnels.account_id')
    .selectAll('static_tunnels')
    .select('accounts.username');
}

export function staticTunnelStore(run: Runner): StaticTunnelStore {
  return {
    createStaticTunnel(t, at) {
      return run.write('createStaticTunnel', async (trx) => {
        const inserted = await trx
          .insertInto('static_tunnels')
          .values({
            account_id: t.accountId,
            hostname: t.hostname.toLowerCase(),
            endpoint: t.endpoint,
            delegate_prefix: t.delegatePrefix ? 1 : 0,
            update_key_hash: null,
            created_at: at,
            updated_at: at,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const row = await query(trx).where('static_tunnels.id', '=', Number(inserted.id)).executeTakeFirstOrThrow();
        return toStatic(row);
      });
    },

    staticTunnelOf(accountId) {
      return run.read('staticTunnelOf', async (db) => {
        const row = await query(db).where('static_tunnels.account_id', '=', accountId).executeTakeFirst();
        return row && toStatic(row);
      });
    },

    findStaticTunnel(hostname) {
      return run.read('findStaticTunnel', async (db) => {
        const row = await query(db).where('static_tunnels.hostname', '=', hostname.toLowerCase()).executeTakeFirst();
        return row && toStatic(row);
      });
    },

    activeStaticTunnels() {
      return run.read('activeStaticTunnels', async (db) =>
        (
          await query(db)
            .where('static_tunnels.endpoint', 'is not', null)
            .where('accounts.disabled', '=', 0)
            .orderBy('static_tunnels.id')
            .execute()
        ).map(toStatic),
      );
    },

    updateStaticTunnel(id, change, at) {
      return run.write('updateStaticTunnel', async (trx) => {
        const r = await trx
          .updateTable('static_tunnels')
          .set({
            updated_at: at,
            ...(change.endpoint !== undefined ? { endpoint: change.endpoint } : {}),
            ...(change.updateKeyHash !== undefined ? { update_key_hash: change.updateKeyHash } : {}),
            ...(change.delegatePrefix !== undefined ? { delegate_prefix: change.delegatePrefix ? 1 : 0 } : {}),
          })
          .where('id', '=', id)
          .returning('id')
          .executeTakeFirst();
        if (r === undefined) throw new BrokerError('STORE_NOT_FOUND', `no static tunnel with id ${id}`);
      });
    },

    deleteStaticTunnel(id) {
      return run.write('deleteStaticTunnel', async (trx) => {
        const r = await trx.deleteFrom('static_tunnels').where('id', '=', id).returning('id').executeTakeFirst();
        return r !== undefined;
      });
    },
  };
}

function toStatic(r: StaticRow): StaticTunnel {
  return {
    id: Number(r.id),
    accountId: Number(r.account_id),
    username: r.username,
    hostname: r.hostname,
    endpoint: r.endpoint,
    delegatePrefix: Number(r.delegate_prefix) !== 0,
    updateKeyHash: r.update_key_hash,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}
