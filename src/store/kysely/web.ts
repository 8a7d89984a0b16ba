/** @module store/kysely/web: WebStore over Kysely (store/types.ts): admin API tokens and web UI sessions
 *  (schema version 2). */

import type { Selectable } from 'kysely';
import { BrokerError } from '../../errors.js';
import type { ApiToken, WebStore } from '../types.js';
import type { ApiTokensTable } from '../schema.js';
import { nullableNumber, type Runner } from './runner.js';

export function webStore(run: Runner): WebStore {
  return {
    createApiToken(t, at) {
      return run.write('createApiToken', async (trx) => {
        const row = await trx
          .insertInto('api_tokens')
          .values({
            name: t.name,
            token_hash: t.tokenHash,
            created_by: t.createdBy,
            created_at: at,
            last_used_at: null,
            expires_at: t.expiresAt ?? null,
          })
          .onConflict((oc) => oc.column('name').doNothing())
          .returningAll()
          .executeTakeFirst();
        if (row === undefined) throw new BrokerError('STORE_CONFLICT', `a token named '${t.name}' already exists`);
        return toApiToken(row);
      });
    },

    listApiTokens() {
      return run.read('listApiTokens', async (db) =>
        (await db.selectFrom('api_tokens').selectAll().orderBy('name').execute()).map(toApiToken),
      );
    },

    findApiToken(tokenHash) {
      return run.read('findApiToken', async (db) => {
        const row = await db
          .selectFrom('api_tokens')
          .selectAll()
          .where('token_hash', '=', tokenHash)
          .executeTakeFirst();
        return row && toApiToken(row);
      });
    },

    touchApiToken(id, at) {
      return run.write('touchApiToken', async (trx) => {
        await trx.updateTable('api_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
      });
    },

    deleteApiToken(name) {
      return run.write('deleteApiToken', async (trx) => {
        const row = await trx.deleteFrom('api_tokens').where('name', '=', name).returning('id').executeTakeFirst();
        return row !== undefined;
      });
    },

    createWebSession(idHash, s) {
      return run.write('createWebSession', async (trx) => {
        await trx
          .insertInto('web_sessions')
          .values({
            id_hash: idHash,
            account_id: s.accountId,
            csrf_token: s.csrfToken,
            created_at: s.createdAt,
            expires_at: s.expiresAt,
          })
          .execute();
      });
    },

    getWebSession(idHash, now) {
      return run.read('getWebSession', async (db) => {
        const row = await db
          .selectFrom('web_sessions')
          .selectAll()
          .where('id_hash', '=', idHash)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        return (
          row && {
            accountId: Number(row.account_id),
            csrfToken: row.csrf_token,
            createdAt: Number(row.created_at),
            expiresAt: Number(row.expires_at),
          }
        );
      });
    },

    deleteWebSession(idHash) {
      return run.write('deleteWebSession', async (trx) => {
        await trx.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
      });
    },

    deleteExpiredWebSessions(now, limit) {
      return run.write('deleteExpiredWebSessions', async (trx) => {
        const r = await trx
          .deleteFrom('web_sessions')
          .where((eb) =>
            limit === undefined
              ? eb('expires_at', '<=', now)
              : eb(
                  'id_hash',
                  'in',
                  eb
                    .selectFrom('web_sessions')
                    .select('id_hash')
                    .where('expires_at', '<=', now)
                    .orderBy('expires_at')
                    .limit(limit),
                ),
          )
          .executeTakeFirst();
        return Number(r.numDeletedRows);
      });
    },
  };
}

function toApiToken(r: Selectable<ApiTokensTable>): ApiToken {
  return {
    id: Number(r.id),
    name: r.name,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    lastUsedAt: nullableNumber(r.last_used_at),
    expiresAt: nullableNumber(r.expires_at),
  };
}
