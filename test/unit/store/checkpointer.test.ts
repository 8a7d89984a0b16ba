/** store/checkpointer over a real SQLite file: the WAL is copied back into the database file by the worker
 *  thread and stays bounded while commits keep coming (a store that left it to the broker connection's own
 *  fallback would let it grow four times longer); every committed row is there after a reopen; a worker that
 *  cannot run never holds a write back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import { Checkpointer, RESTART_PAGES } from '../../../src/store/checkpointer.js';

function tmp(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-ckpt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'broker.db');
}

const PAGE = 4096;

test('the worker copies the WAL into the database file and keeps it bounded while commits keep coming', async (t) => {
  const file = tmp(t);
  const store = await openSqliteStore({ file });
  t.after(() => store.close());
  await store.transaction((trx) => sql`create table scratch (id integer primary key, body blob)`.execute(trx));
  // 240 commits of 50 rows of 4 KB: about 12,000 pages written, three times RESTART_PAGES
  const body = Buffer.alloc(PAGE, 7);
  let largestWal = 0;
  for (let c = 0; c < 240; c++) {
    await Promise.all(
      Array.from({ length: 5 }, () =>
        store.transaction(async (trx) => {
          for (let i = 0; i < 10; i++) await sql`insert into scratch (body) values (${body})`.execute(trx);
        }),
      ),
    );
    largestWal = Math.max(largestWal, statSync(`${file}-wal`).size);
  }
  const stats = store.writeStats()!.checkpoints!;
  assert.equal(stats.failed, false);
  assert.ok(stats.passes > 0, 'the worker ran passes');
  // at most RESTART_PAGES and the groups committed while a held pass ran, with room; without the worker the WAL
  // would hold all 12,000 pages (the connection's own fallback waits for 16,000)
  assert.ok(
    largestWal < 2 * RESTART_PAGES * PAGE,
    `WAL file at most ${largestWal / PAGE} pages (RESTART_PAGES ${RESTART_PAGES})`,
  );
  await store.close();
  // the last connection to close copied the rest and removed the WAL; every row is in the database file
  assert.equal(existsSync(`${file}-wal`), false);
  const db = new BetterSqlite3(file, { readonly: true });
  t.after(() => db.close());
  assert.equal((db.prepare('select count(*) as n from scratch').get() as { n: number }).n, 240 * 50);
});

test('a reader elsewhere that keeps the WAL from starting over holds few writes, and once it lets go the WAL starts over', async (t) => {
  const file = tmp(t);
  const store = await openSqliteStore({ file });
  t.after(() => store.close());
  await store.transaction((trx) => sql`create table scratch (id integer primary key, body blob)`.execute(trx));
  // another process's reader (a backup, a sqlite3 shell) in a read transaction: no frame after its snapshot
  // can be copied, so no pass can let the WAL start over while it reads
  const reader = new BetterSqlite3(file, { readonly: true });
  t.after(() => reader.close());
  reader.exec('begin');
  reader.prepare('select count(*) from scratch').get();
  const body = Buffer.alloc(PAGE, 3);
  const commit = () =>
    store.transaction(async (trx) => {
      for (let i = 0; i < 50; i++) await sql`insert into scratch (body) values (${body})`.execute(trx);
    });
  for (let c = 0; c < 200; c++) await commit(); // about 10,000 pages
  const pinned = store.writeStats()!.checkpoints!;
  assert.ok(pinned.walPages >= 2 * RESTART_PAGES, `the WAL grew while pinned: ${pinned.walPages} pages`);
  assert.ok(pinned.held <= 3, `${pinned.held} of 200 commits held (one for each RESTART_PAGES it grew)`);
  reader.exec('commit');
  for (let c = 0; c < 10 && store.writeStats()!.checkpoints!.walPages >= RESTART_PAGES; c++) await commit();
  const after = store.writeStats()!.checkpoints!;
  assert.ok(after.walPages < RESTART_PAGES, `the WAL started over once the reader let go: ${after.walPages} pages`);
});

test('a worker that cannot open the database fails alone: no write waits for it', async (t) => {
  const c = new Checkpointer(path.join(path.dirname(tmp(t)), 'missing.db'));
  t.after(() => c.close());
  for (let i = 0; i < 100 && !c.stats.failed; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(c.stats.failed, true);
  // even with a WAL the committer would otherwise hold writes for
  c.stats.walPages = RESTART_PAGES * 2;
  assert.equal(c.afterCommit(), undefined);
});

test('the worker never keeps a process alive: one that opens a store and ends without closing it exits', (t) => {
  const file = tmp(t);
  const script = path.join(path.dirname(file), 'open-and-leave.mts');
  const sqlite = pathToFileURL(path.resolve('src/store/sqlite.ts')).href;
  writeFileSync(
    script,
    `import { openSqliteStore } from ${JSON.stringify(sqlite)};\n` +
      `const store = await openSqliteStore({ file: ${JSON.stringify(file)} });\n` +
      `if (process.argv[2] === 'write') await store.setSettingIfAbsent('k', 'v');\n`,
  );
  for (const mode of ['read', 'write']) {
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), script, mode], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    assert.equal(r.signal, null, `${mode}: still running after 20 s (stderr: ${r.stderr})`);
    assert.equal(r.status, 0, r.stderr);
  }
});
