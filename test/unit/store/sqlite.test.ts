/** The Store contract on SQLite (a temporary file), plus what only SQLite has: the file, its pragmas, its
 *  migration table, and a full disk. */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { BrokerError } from '../../../src/errors.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import { openStore } from '../../../src/store/open.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../../src/store/migrations.js';
import type { Database } from '../../../src/store/schema.js';
import { storeContract } from './contract.js';
import { allocatorContract } from './allocator-contract.js';
import { leaseChunksContract } from './lease-chunks-contract.js';
import { reverseDnsContract } from './reverse-dns-contract.js';
import { sharedLinkContract } from './shared-link-contract.js';
import { staticTunnelsContract } from './static-tunnels-contract.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsp-store-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const contractFile = path.join(dir, 'contract', 'nested', 'broker.db');
storeContract('sqlite', () => openSqliteStore({ file: contractFile }));
allocatorContract('sqlite', () => openSqliteStore({ file: contractFile }));
leaseChunksContract('sqlite', () => openSqliteStore({ file: contractFile }));
reverseDnsContract('sqlite', () => openSqliteStore({ file: contractFile }));
sharedLinkContract('sqlite', () => openSqliteStore({ file: contractFile }));
staticTunnelsContract('sqlite', () => openSqliteStore({ file: contractFile }));

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
      // one node's store: no (node, state) index to update on every session's state changes (version 10)
      const indexes = raw
        .prepare("select name from sqlite_master where type = 'index' and tbl_name = 'tunnels' and sql is not null")
        .pluck()
        .all();
      assert.deepEqual(indexes.sort(), ['tunnels_account_created', 'tunnels_created', 'tunnels_state_created']);
    } finally {
      raw.close();
    }
  });

  it('migrates a version-3 database to web-only accounts without losing rows, ids or references', async () => {
    const file = path.join(dir, 'v3.db');
    const raw = new BetterSqlite3(file);
    raw.pragma('foreign_keys = ON');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
    await sql`create table schema_migrations (version integer primary key, name text not null, applied_at bigint not null)`.execute(
      db,
    );
    for (const m of [...MIGRATIONS].filter((x) => x.version <= 3).sort((a, b) => a.version - b.version)) {
      await m.up(db, 'sqlite');
      await sql`insert into schema_migrations values (${m.version}, ${m.name}, 0)`.execute(db);
    }
    const insert = (name: string) =>
      raw
        .prepare(
          `insert into accounts (username, role, password_hash, digest_ha1, digest_realm, created_at, updated_at)
           values (?, 'user', '$argon2id$h', '${'e'.repeat(32)}', 'tsp-broker', 1, 1)`,
        )
        .run(name).lastInsertRowid;
    const kept = Number(insert('v3-kept'));
    raw.prepare('delete from accounts where id = ?').run(Number(insert('v3-deleted')));
    raw
      .prepare(
        `insert into tunnels (account_id, type, transport, client_ipv4, client_port, server_ipv4, server_ipv6,
           client_ipv6, keepalive_interval, lifetime_s, state, created_at)
         values (?, 'v6udpv4', 'udp', '192.0.2.1', 1, '192.0.2.2', 'fd00::1', 'fd00::2', 30, 60, 'established', 5)`,
      )
      .run(kept);
    raw
      .prepare(
        `insert into web_sessions (id_hash, account_id, csrf_token, created_at, expires_at) values ('s', ?, 'c', 1, 9e15)`,
      )
      .run(kept);
    await db.destroy();
    fs.chmodSync(file, 0o600);

    const store = await openSqliteStore({ file });
    try {
      const secrets = await store.getAccountSecrets('v3-kept');
      assert.deepEqual([secrets?.id, secrets?.digestHa1, secrets?.webOnly], [kept, 'e'.repeat(32), false]);
      const tunnel = (await store.listTunnels({ accountId: kept })).items[0];
      assert.equal(tunnel?.username, 'v3-kept', 'the tunnel still points at its account');
      assert.ok(await store.getWebSession('s', 2), 'the web session was not cascaded away');
      const next = await store.createAccount({
        username: 'v4-new',
        role: 'admin',
        passwordHash: '$argon2id$n',
        digestHa1: null,
        digestRealm: null,
      });
      assert.equal(next.id, kept + 2, 'the id of the deleted account is not reused');
    } finally {
      await store.close();
    }
    const check = new BetterSqlite3(file, { readonly: true });
    try {
      const cols = check.prepare('select name, "notnull" from pragma_table_info(\'accounts\')').all() as {
        name: string;
        notnull: number;
      }[];
      assert.deepEqual(
        cols.filter((c) => c.name.startsWith('digest_')).map((c) => [c.name, c.notnull]),
        [
          ['digest_ha1', 0],
          ['digest_realm', 0],
        ],
      );
      assert.deepEqual(check.prepare('select * from pragma_foreign_key_check').all(), []);
      assert.equal(check.prepare('select max(version) from schema_migrations').pluck().get(), SCHEMA_VERSION);
    } finally {
      check.close();
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
