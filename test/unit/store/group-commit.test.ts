/** store/group-commit over a real SQLite file: concurrent writes share commits, each stays all-or-nothing and
 *  is settled only after its group's commit is synced; a failing write is rejected alone; a full disk rejects
 *  the group and leaves the database usable; a failed sync refuses every write after it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { BrokerError } from '../../../src/errors.js';
import { GroupCommitter, MAX_GROUP } from '../../../src/store/group-commit.js';
import type { Database } from '../../../src/store/schema.js';

function tmp(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-group-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'broker.db');
}

const secrets = { passwordHash: 'x', digestHa1: null, digestRealm: null };

test('concurrent writes share commits, and every one is on disk when it resolves', async (t) => {
  const file = tmp(t);
  const store = await openSqliteStore({ file });
  const before = store.writeStats()!;
  const n = 60;
  const made = await Promise.all(
    Array.from({ length: n }, (_, i) => store.createAccount({ username: `u${i}`, role: 'user', ...secrets })),
  );
  assert.equal(new Set(made.map((a) => a.id)).size, n);
  const after = store.writeStats()!;
  assert.equal(after.writes - before.writes, n);
  assert.ok(after.commits - before.commits < n, `${after.commits - before.commits} commits for ${n} writes`);
  assert.ok(after.largestGroup > 1);
  // another connection (another process would see the same) finds every account: they were committed
  const other = new BetterSqlite3(file, { readonly: true });
  assert.equal((other.prepare('select count(*) as n from accounts').get() as { n: number }).n, n);
  other.close();
  await store.close();
});

test('a write that fails in a group is rolled back and rejected alone', async (t) => {
  const store = await openSqliteStore({ file: tmp(t) });
  await store.createAccount({ username: 'taken', role: 'user', ...secrets });
  const results = await Promise.allSettled(
    ['a', 'b', 'taken', 'c', 'd'].map((username) => store.createAccount({ username, role: 'user', ...secrets })),
  );
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  const failed = results[2] as PromiseRejectedResult;
  assert.ok(failed.reason instanceof BrokerError && failed.reason.code === 'STORE_CONFLICT');
  // a batch in the same group that throws half way leaves none of its writes
  const batch = store.batch(async (tx) => {
    await tx.createAccount({ username: 'half', role: 'user', ...secrets });
    throw new Error('changed my mind');
  });
  const alongside = store.createAccount({ username: 'e', role: 'user', ...secrets });
  await assert.rejects(batch, /changed my mind/);
  await alongside;
  assert.equal(await store.getAccountSecrets('half'), undefined);
  assert.deepEqual((await store.listAccounts({ limit: 10 })).items.map((a) => a.username).sort(), [
    'a',
    'b',
    'c',
    'd',
    'e',
    'taken',
  ]);
  await store.close();
});

test('a full disk rejects the writes of the group it hits, and the store stays usable', async (t) => {
  const file = tmp(t);
  await (await openSqliteStore({ file })).close();
  const pages = new BetterSqlite3(file).pragma('page_count', { simple: true }) as number;
  const store = await openSqliteStore({ file, pragmas: { max_page_count: pages + 3 } });
  const pad = 'x'.repeat(3000);
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) =>
      store.addAudit({ at: i, actor: 'system', action: 'fill.disk', target: null, detail: { pad, i } }),
    ),
  );
  const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  assert.ok(rejected.length > 0, 'the disk filled');
  for (const r of rejected) assert.ok(r.reason instanceof BrokerError && r.reason.code === 'STORE_FAILED');
  // what resolved is there, what was rejected is not: count the rows a fresh reader sees
  const other = new BetterSqlite3(file, { readonly: true });
  const rows = (other.prepare("select count(*) as n from audit where action = 'fill.disk'").get() as { n: number }).n;
  other.close();
  assert.equal(rows, results.length - rejected.length);
  // no transaction was left open: a small write still works
  await store.setSettingIfAbsent('after', 'full');
  assert.equal(await store.getSetting('after'), 'full');
  await store.close();
});

/** A GroupCommitter over a real SQLite file whose sync the test releases by hand. */
function gatedCommitter(t: import('node:test').TestContext) {
  const raw = new BetterSqlite3(tmp(t));
  raw.pragma('journal_mode = WAL');
  raw.exec('create table t (x integer)');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
  t.after(() => db.destroy());
  const syncs: { release: () => void; fail: (e: Error) => void }[] = [];
  const committer = new GroupCommitter({
    withConnection: (body) => db.connection().execute(body),
    inTransaction: () => raw.inTransaction,
    sync: () => new Promise<void>((release, fail) => syncs.push({ release, fail })),
  });
  const insert = (x: number, provisional = false) =>
    committer.write((c) => sql`insert into t values (${x})`.execute(c), provisional);
  const seen = () => raw.prepare('select x from t order by x').pluck().all();
  return { syncs, insert, seen, stats: committer.stats };
}

/** Lets the event loop turn until `cond` holds (bounded: 10,000 turns). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition never held');
}

test('a write is acknowledged only after a sync that began after its commit; writes gather meanwhile', async (t) => {
  const { syncs, insert, seen } = gatedCommitter(t);
  let acked = false;
  const first = insert(1).then(() => (acked = true));
  await until(() => syncs.length === 1);
  assert.deepEqual(seen(), [1], 'committed');
  assert.equal(acked, false, 'not acknowledged while its sync runs');
  const later = [insert(2), insert(3)];
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen(), [1], 'the next group waits for the sync, gathering writes');
  syncs[0]!.release();
  await first;
  await until(() => syncs.length === 2);
  assert.deepEqual(seen(), [1, 2, 3], 'the two later writes in one group');
  let laterAcked = false;
  void Promise.all(later).then(() => (laterAcked = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(laterAcked, false);
  syncs[1]!.release();
  await Promise.all(later);
  assert.equal(syncs.length, 2, 'the two later commits shared one sync');
});

test('a provisional write is acknowledged at its commit; the next durable write syncs past it', async (t) => {
  const { syncs, insert, seen, stats } = gatedCommitter(t);
  let firstAcked = false;
  void insert(1, true).then(() => (firstAcked = true));
  await until(() => firstAcked || syncs.length > 0);
  assert.equal(firstAcked, true, 'acknowledged without waiting for a sync');
  assert.deepEqual(seen(), [1], 'committed');
  assert.equal(syncs.length, 0, 'and none asked for');
  // a durable write waits for a sync that begins after its commit, which covers the provisional one too
  let acked = false;
  const durable = insert(2).then(() => (acked = true));
  await until(() => syncs.length === 1);
  assert.deepEqual(seen(), [1, 2]);
  assert.equal(acked, false, 'the durable write waits for its sync');
  // in one group, the provisional member is acknowledged at the commit, the durable one after the sync
  syncs[0]!.release();
  await durable;
  let [provisionalAcked, durableAcked] = [false, false];
  const mixed = [insert(3, true).then(() => (provisionalAcked = true)), insert(4).then(() => (durableAcked = true))];
  await until(() => syncs.length === 2);
  await until(() => provisionalAcked);
  assert.deepEqual(seen(), [1, 2, 3, 4]);
  assert.equal(durableAcked, false, 'the durable member of the group still waits');
  syncs[1]!.release();
  await mixed[1];
  assert.equal(stats.provisional, 2);
});

test('a full group does not wait for the sync before it', async (t) => {
  const { syncs, insert, seen } = gatedCommitter(t);
  const first = insert(0);
  await until(() => syncs.length === 1);
  const full = Array.from({ length: MAX_GROUP }, (_, i) => insert(i + 1));
  await until(() => seen().length === MAX_GROUP + 1);
  assert.equal(syncs.length, 1, 'committed while the first sync still runs');
  syncs[0]!.release();
  await first;
  await until(() => syncs.length === 2);
  syncs[1]!.release();
  await Promise.all(full);
});

test('a failed sync rejects the writes waiting on it and refuses every write after it', async (t) => {
  const { syncs, insert } = gatedCommitter(t);
  const first = insert(1);
  await until(() => syncs.length === 1);
  syncs[0]!.fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  await assert.rejects(first, /could not be synced to disk.*EIO/);
  await assert.rejects(insert(2), /could not be synced to disk/);
  assert.equal(syncs.length, 1, 'no write reached the database after the failure');
});

test('a read from outside a group does not wait for it and never sees its writes before they commit', async (t) => {
  const file = tmp(t);
  const store = await openSqliteStore({ file });
  t.after(() => store.close());
  let inside!: () => void;
  const reached = new Promise<void>((r) => (inside = r));
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  // a batch that creates an account and a tunnel (prepared statements, run on the group's connection), then
  // waits while a read from outside runs, then fails: everything it wrote is rolled back
  const doomed = store.batch(async (tx) => {
    const a = await tx.createAccount({ username: 'dirty-read', role: 'user', ...secrets });
    await tx.createTunnel(
      {
        accountId: a.id,
        leaseId: null,
        type: 'v6v4',
        transport: 'tcp',
        clientIpv4: '192.0.2.7',
        clientPort: 0,
        serverIpv4: '198.51.100.1',
        serverIpv6: '2001:db8:7::1',
        clientIpv6: '2001:db8:7::2',
        prefix: null,
        prefixLen: null,
        keepaliveInterval: 30,
        lifetimeS: 3600,
      },
      1,
    );
    inside();
    await held;
    throw new Error('rolled back on purpose');
  });
  await reached;
  // the group still holds the writer's connection: the reads answer from the last commit meanwhile
  assert.equal(await store.getAccountSecrets('dirty-read'), undefined, 'the uncommitted account is not visible');
  assert.equal((await store.listAccounts({})).total, 0);
  assert.equal((await store.liveTunnels()).length, 0);
  release();
  await assert.rejects(doomed, /rolled back on purpose/);
  assert.equal(await store.getAccountSecrets('dirty-read'), undefined, 'the rolled-back account was never visible');
  // and a write is visible to the next read once it is acknowledged
  await store.createAccount({ username: 'clean-read', role: 'user', ...secrets });
  assert.equal((await store.getAccountSecrets('clean-read'))?.username, 'clean-read');
});
