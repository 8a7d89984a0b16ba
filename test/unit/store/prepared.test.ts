/** store/kysely/prepared: a statement compiled once runs with its named values on SQLite, synchronously inside a
 *  group and through Kysely outside one, and refuses a value it was not given instead of binding NULL (which
 *  would match nothing, or write a NULL, without a word). */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import { param, prepared } from '../../../src/store/kysely/prepared.js';

const byName = prepared<'username', { id: number | string; username: string }>((db) =>
  db.selectFrom('accounts').select(['id', 'username']).where('username', '=', param<string>('username')),
);

test('a prepared statement runs with its values inside and outside a transaction and refuses a missing one', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsp-prepared-'));
  const store = await openSqliteStore({ file: path.join(dir, 'broker.db') });
  t.after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const secrets = { passwordHash: 'x', digestHa1: null, digestRealm: null };
  const a = await store.createAccount({ username: 'prep-ann', role: 'user', ...secrets });
  await store.createAccount({ username: 'prep-bob', role: 'user', ...secrets });
  // inside a write transaction: the group's connection, where it runs synchronously on better-sqlite3
  const inside = await store.transaction((trx) => byName.first(trx, { username: 'prep-ann' }));
  assert.deepEqual([Number(inside?.id), inside?.username], [a.id, 'prep-ann']);
  // outside one, through Kysely's executor (getAccountSecrets is prepared the same way)
  assert.equal((await store.getAccountSecrets('prep-bob'))?.username, 'prep-bob');
  await assert.rejects(
    store.transaction((trx) => byName.first(trx, {} as { username: string })),
    /no value for 'username'/,
  );
  assert.equal(await store.transaction((trx) => byName.first(trx, { username: 'nobody' })), undefined);
});
