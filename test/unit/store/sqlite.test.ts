/** The Store contract on SQLite (a temporary file), plus what only SQLite has: the file, its pragmas, its
 *  migration table, and a full disk. */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { BrokerError } from '../../../src/errors.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import { openStore } from '../../../src/store/open.js';
import { SCHEMA_VERSION } from '../../../src/store/migrations.js';
import { storeContract } from './contract.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsp-store-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const contractFile = path.join(dir, 'contract', 'nested', 'broker.db');
storeContract('sqlite', () => openSqliteStore({ file: contractFile }));

describe('SQLite store', () => {
  it('creates the directory, uses WAL and foreign keys, and records each migration once', async () => {
    const file = path.join(dir, 'a', 'b', 'fresh.db');
    const store = await openSqliteStore({ file });
    await store.close();
    const again = await openStore({ driver: 'sqlite', path: file, url: null });
    assert.equal(again.dialect, 'sqlite');
    await again.close();

    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      const versions = raw.prepare('select version from schema_migrations order by version').pluck().all();
      assert.deepEqual(
        versions,
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      const accountColumns = raw.prepare("select name from pragma_table_info('accounts')").pluck().all() as string[];
      assert.ok(accountColumns.includes('password_hash') && accountColumns.includes('digest_ha1'));
      assert.deepEqual(
        accountColumns.filter((c) => /pass/i.test(c)),
        ['password_hash'],
        'no plaintext password column',
      );
      const fk = raw.prepare('select "table", on_delete from pragma_foreign_key_list(\'tunnels\')').all() as {
        table: string;
        on_delete: string;
      }[];
      assert.deepEqual(fk, [{ table: 'accounts', on_delete: 'SET NULL' }]);
    } finally {
      raw.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    const file = path.join(dir, 'newer.db');
    await (await openSqliteStore({ file })).close();
    const raw = new BetterSqlite3(file);
    raw.prepare("insert into schema_migrations (version, name, applied_at) values (9999, 'future', 0)").run();
    raw.close();
    await assert.rejects(
      openSqliteStore({ file }),
      (e: unknown) => e instanceof BrokerError && e.code === 'STORE_FAILED',
    );
  });

  it('surfaces a full database as STORE_FAILED and keeps working', async () => {
    const file = path.join(dir, 'full.db');
    await (await openSqliteStore({ file })).close();
    const pages = new BetterSqlite3(file).pragma('page_count', { simple: true }) as number;
    const store = await openSqliteStore({ file, pragmas: { max_page_count: pages + 2 } });
    try {
      let failure: unknown;
      for (let i = 0; i < 2000 && failure === undefined; i++) {
        await store
          .addAudit({ at: i, actor: 'system', action: 'fill.disk', target: null, detail: { pad: 'x'.repeat(2000) } })
          .catch((e: unknown) => (failure = e));
      }
      assert.ok(failure instanceof BrokerError, `expected a BrokerError, got ${String(failure)}`);
      assert.equal(failure.code, 'STORE_FAILED');
      assert.match(String((failure.cause as { code?: string }).code), /SQLITE_FULL/);
      const listed = await store.listAudit({ action: 'fill.disk', limit: 1 });
      assert.ok(listed.total > 0);
      assert.equal(await store.getSetting('missing'), undefined);
      // The failed transaction was rolled back and left nothing open: the next write fails the same clean way
      // (not with "cannot start a transaction within a transaction"), and a write that frees space works.
      await assert.rejects(
        store.addAudit({
          at: 1,
          actor: 'system',
          action: 'fill.disk',
          target: null,
          detail: { pad: 'y'.repeat(4000) },
        }),
        (e: unknown) => e instanceof BrokerError && (e.cause as { code?: string }).code === 'SQLITE_FULL',
      );
      assert.equal(await store.setSettingIfAbsent('k', 'v'), 'v');
    } finally {
      await store.close();
    }
  });

  it('opens a private in-memory database and closes idempotently', async () => {
    const store = await openSqliteStore({ file: ':memory:' });
    assert.equal(await store.setSettingIfAbsent('k', 'v'), 'v');
    await store.close();
    await store.close();
    await assert.rejects(store.getSetting('k'), (e: unknown) => e instanceof BrokerError && e.code === 'STORE_FAILED');
  });

  it('creates a new database 0600 in a 0700 directory, its -wal and -shm 0600 too, whatever the umask', async () => {
    const parent = path.join(dir, 'perm');
    const file = path.join(parent, 'secret', 'broker.db');
    const old = process.umask(0o002);
    let store;
    try {
      store = await openSqliteStore({ file });
    } finally {
      process.umask(old);
    }
    try {
      await store.createAccount({
        username: 'perm-alice',
        role: 'user',
        passwordHash: '$argon2id$x',
        digestHa1: 'a'.repeat(32),
        digestRealm: 'tsp-broker',
      });
      const mode = (p: string) => fs.statSync(p).mode & 0o777;
      assert.equal(mode(path.dirname(file)).toString(8), '700');
      assert.equal(mode(parent).toString(8), '700');
      assert.equal(mode(file).toString(8), '600');
      assert.equal(mode(`${file}-wal`).toString(8), '600', 'SQLite copies the main file mode to the WAL');
      assert.equal(mode(`${file}-shm`).toString(8), '600');
    } finally {
      await store.close();
    }
  });

  it('refuses a database file readable by group or others, naming file, mode and fix; the opt-out opens it', async () => {
    const file = path.join(dir, 'shared.db');
    await (await openSqliteStore({ file })).close();
    fs.chmodSync(file, 0o644);
    await assert.rejects(openSqliteStore({ file }), (e: unknown) => {
      assert.ok(e instanceof BrokerError);
      assert.equal(e.code, 'CFG_INVALID');
      assert.match(e.message, /mode 0644/);
      assert.ok(e.message.includes(`chmod 600 ${file}`), e.message);
      return true;
    });
    fs.chmodSync(file, 0o620);
    await assert.rejects(openSqliteStore({ file }), /mode 0620/, 'group-writable is refused too');
    const store = await openStore({ driver: 'sqlite', path: file, url: null, allowGroupReadable: true });
    await store.close();
    assert.equal(fs.statSync(file).mode & 0o777, 0o620, 'the opt-out leaves the mode alone');

    fs.chmodSync(file, 0o600);
    fs.writeFileSync(`${file}-wal`, '');
    fs.chmodSync(`${file}-wal`, 0o644);
    const fixed = await openSqliteStore({ file });
    try {
      assert.equal(fs.statSync(`${file}-wal`).mode & 0o777, 0o600, 'a leftover WAL is made private');
    } finally {
      await fixed.close();
    }
  });

  it('reports an unopenable file as STORE_FAILED', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, '');
    await assert.rejects(
      openSqliteStore({ file: path.join(blocker, 'x.db') }),
      (e: unknown) => e instanceof BrokerError && e.code === 'STORE_FAILED',
    );
  });
});
