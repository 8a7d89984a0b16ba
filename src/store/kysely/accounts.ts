/** @module store/kysely/accounts: AccountStore over Kysely (store/types.ts). */

import { sql, type Expression, type ExpressionBuilder, type Selectable, type SqlBool } from 'kysely';
import { BrokerError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import { releaseAccount } from '../allocator.js';
import type { Account, AccountLimits, AccountStore, PasswordSecrets, Role } from '../types.js';
import type { AccountsTable, Database } from '../schema.js';
import { likeSubstring, page, type Runner } from './runner.js';
import { param, prepared } from './prepared.js';

type AccountRow = Selectable<AccountsTable>;
type AccountUpdate = Partial<Pick<AccountRow, 'password_hash' | 'digest_ha1' | 'digest_realm' | 'disabled' | 'limits'>>;

export function accountStore(run: Runner, clock: Clock): AccountStore {
  /** Sets columns of one account and its updated_at; STORE_NOT_FOUND if there is no such id. */
  const updateAccount = (op: string, id: number, set: AccountUpdate): Promise<void> =>
    run.write(op, async (trx) => {
      const row = await trx
        .updateTable('accounts')
        .set({ ...set, updated_at: clock.now() })
        .where('id', '=', id)
        .returning('id')
        .executeTakeFirst();
      if (row === undefined) throw new BrokerError('STORE_NOT_FOUND', `no account with id ${id}`);
    });

  return {
    createAccount(a) {
      return run.write('createAccount', async (trx) => {
        checkDigestPair(a);
        const now = clock.now();
        const row = await trx
          .insertInto('accounts')
          .values({
            username: a.username,
            role: a.role,
            disabled: 0,
            limits: JSON.stringify(a.limits ?? {}),
            password_hash: a.passwordHash,
            digest_ha1: a.digestHa1,
            digest_realm: a.digestRealm,
            created_at: now,
            updated_at: now,
          })
          .onConflict((oc) => oc.column('username').doNothing())
          .returningAll()
          .executeTakeFirst();
        if (row === undefined) throw new BrokerError('STORE_CONFLICT', `username '${a.username}' already exists`);
        return toAccount(row);
      });
    },

    getAccount(id) {
      return run.read('getAccount', async (db) => {
        const row = await db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
        return row && toAccount(row);
      });
    },

    getAccountSecrets(username) {
      return run.read('getAccountSecrets', async (db) => {
        const row = await accountByName.first(db, { username });
        if (row === undefined) return undefined;
        return {
          ...toAccount(row),
          passwordHash: row.password_hash,
          digestHa1: row.digest_ha1,
          digestRealm: row.digest_realm,
        };
      });
    },

    /** Ordered by username. `search` matches a case-insensitive substring of the username; % and _ in it are
     *  literal characters. */
    listAccounts(q) {
      return run.read('listAccounts', async (db) => {
        const where = (eb: ExpressionBuilder<Database, 'accounts'>): Expression<SqlBool> =>
          q.search
            ? sql<SqlBool>`lower(${eb.ref('username')}) like ${likeSubstring(q.search)} escape '\\'`
            : eb.and([]);
        const { limit, offset } = page(q);
        const [count, rows] = await Promise.all([
          db
            .selectFrom('accounts')
            .select((eb) => eb.fn.countAll().as('n'))
            .where(where)
            .executeTakeFirstOrThrow(),
          db
            .selectFrom('accounts')
            .selectAll()
            .where(where)
            .orderBy('username')
            .orderBy('id')
            .limit(limit)
            .offset(offset)
            .execute(),
        ]);
        return { items: rows.map(toAccount), total: Number(count.n) };
      });
    },

    setPassword(id, p) {
      try {
        checkDigestPair(p);
      } catch (e) {
        return Promise.reject(e as Error);
      }
      return updateAccount('setPassword', id, {
        password_hash: p.passwordHash,
        digest_ha1: p.digestHa1,
        digest_realm: p.digestRealm,
      });
    },

    setDisabled(id, disabled) {
      return updateAccount('setDisabled', id, { disabled: disabled ? 1 : 0 });
    },

    setLimits(id, limits) {
      return updateAccount('setLimits', id, { limits: JSON.stringify(limits) });
    },

    /** One transaction: releases the account's allocations, deletes it; its tunnels keep their rows with
     *  account_id set to NULL by the foreign key (ON DELETE SET NULL). STORE_NOT_FOUND if there is no such id. */
    deleteAccount(id) {
      return run.write('deleteAccount', async (trx) => {
        await releaseAccount(trx, id);
        const deleted = await trx.deleteFrom('accounts').where('id', '=', id).returning('id').executeTakeFirst();
        if (deleted === undefined) throw new BrokerError('STORE_NOT_FOUND', `no account with id ${id}`);
      });
    },
  };
}

function toAccount(r: AccountRow): Account {
  return {
    id: Number(r.id),
    username: r.username,
    role: r.role as Role,
    disabled: Number(r.disabled) !== 0,
    limits: JSON.parse(r.limits) as AccountLimits,
    webOnly: r.digest_ha1 === null,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

/** A DIGEST-MD5 secret is meaningless without its realm, and a realm without a secret is a mistake. */
function checkDigestPair(p: PasswordSecrets): void {
  if ((p.digestHa1 === null) !== (p.digestRealm === null))
    throw new BrokerError('INTERNAL', 'digestHa1 and digestRealm must both be set or both be null');
}

/** Every DIGEST-MD5 and PLAIN session reads its account by name (prepared.ts). */
const accountByName = prepared<'username', Selectable<AccountsTable>>((db) =>
  db.selectFrom('accounts').selectAll().where('username', '=', param<string>('username')),
);
