/** @module store/sqlite: the default Store, one SQLite file through better-sqlite3 and Kysely's SqliteDialect.
 *  The queries live in kysely-store.ts and the files it puts together; this file opens the file, sets the
 *  connection up and says how a write transaction runs on SQLite.
 *
 *  Connection settings, and why:
 *  - journal_mode=WAL: readers never wait for the writer, and one fsync per commit instead of two.
 *  - Durable before acknowledged, with the fsync off the event loop: synchronous=NORMAL, and after each commit
 *    an fdatasync of the WAL file on libuv's thread pool (walSync below) before anything waiting on that commit
 *    is told (group-commit.ts). With WAL, NORMAL alone could lose the last commits on power loss (never
 *    corrupts); we acknowledge an allocation or an account change on the wire right after it is durable
 *    (docs/design.md, "State and restart"), and losing it would let the broker give the same prefix to someone
 *    else after a reboot while the first client still routes it. synchronous=FULL gives the same guarantee by
 *    syncing inside COMMIT, which better-sqlite3 runs on the event loop: a fifth of the broker's time under a
 *    storm of sessions went to waiting for the disk there. NORMAL still syncs the WAL before a checkpoint and
 *    the database file after one, so the file never gets ahead of a durable WAL. A kill -9 loses nothing
 *    either way (committed pages are in the kernel's cache).
 *  - WAL checkpoints on a worker thread with a connection of its own (checkpointer.ts), not inside COMMIT on the
 *    event loop: wal_autocheckpoint here is only the fallback for a worker that is gone.
 *  - Reads outside a write never wait for the group that holds the writer's connection (a DIGEST-MD5 login's
 *    account lookup waited behind every other session's offer): a prepared read runs at once, on the writer's
 *    connection when no transaction is open there, else on a second connection (query_only, opened at the
 *    first such read), which in WAL mode reads the last commit. Either way it sees what the writer's connection
 *    shows after the last COMMIT: committed, and durable once that group's sync is done, as before.
 *  - temp_store=MEMORY on the writer's connection: each write of a group runs under a savepoint, and SQLite keeps
 *    the pages a savepoint changes that earlier writes of the group had changed already (to roll back to it)
 *    in a sub-journal, which goes to a temporary file past 64 KiB. A session's accept (five statements over two
 *    tables and their indexes) passed that, and those file writes and reads made every statement of the group
 *    three to four times slower. A group is at most MAX_GROUP writes, so the memory is bounded by what they
 *    change; the reader's connection, which runs the large sorted listings, keeps temporary files.
 *  - foreign_keys=ON: SQLite leaves them off by default; deleteAccount relies on ON DELETE SET NULL.
 *  - busy_timeout: how long a writer waits for another *process* holding the write lock. better-sqlite3 is
 *    synchronous, so that wait blocks this event loop; keep it short enough not to stall the broker.
 *
 *  Write transactions (StoreDriver.write) are BEGIN IMMEDIATE, so the write lock is taken up front: two writers
 *  never both hold read snapshots and then deadlock on the upgrade. Inside one process every write on a given
 *  file also goes through one in-process queue shared by all Store instances on that file: a second instance's
 *  BEGIN IMMEDIATE would otherwise block the event loop (busy_timeout) while the first instance's open
 *  transaction waits for that same event loop to finish, a self-deadlock until the timeout. The writes waiting
 *  when a transaction starts share it, each under a savepoint, and one commit (group commit, group-commit.ts):
 *  one fsync for many sessions, each acknowledged only after it.
 *
 *  File permissions: the file holds each account's DIGEST-MD5 secret, which is password-equivalent for TSP and
 *  cheap to attack (MD5). A directory we create is 0700, a file we create is 0600 before SQLite opens it, and
 *  SQLite gives the -wal and -shm files it creates the mode of the main file (os_unix.c, findCreateFileMode).
 *  An existing file that group or others may read or write is refused (CFG_INVALID, naming the file, its mode
 *  and the chmod that fixes it) unless the operator opts out (store.allowGroupReadable); a -wal/-shm left
 *  group-readable next to a private main file (say, after a crash before the operator's chmod) is made 0600. */

import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, type SqliteDatabase } from 'kysely';
import { BrokerError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Database } from './schema.js';
import type { BatchOptions } from './types.js';
import { openKyselyStore, type KyselyStore } from './kysely-store.js';
import type { StoreDriver } from './kysely/runner.js';
import { GroupCommitter } from './group-commit.js';
import { registerSyncConnection, type SyncExecute } from './kysely/prepared.js';
import { Checkpointer, FALLBACK_PAGES } from './checkpointer.js';

export interface SqliteStoreOptions {
  /** Database file; its directory is created if missing. ':memory:' for a private in-memory database. */
  file: string;
  /** Time source for created_at/updated_at the Store methods do not take as a parameter. */
  clock?: Clock;
  /** The name the tunnel rows carry (open.ts OpenOptions.nodeId). */
  nodeId?: string;
  /** Longest wait for another process's write lock. Default DEFAULT_BUSY_TIMEOUT_MS. */
  busyTimeoutMs?: number;
  /** Extra PRAGMAs applied after ours, e.g. { max_page_count: 64 } in tests to make the file "full". */
  pragmas?: Record<string, string | number>;
  /** Accept an existing file that group or others may read or write (store.allowGroupReadable). */
  allowGroupReadable?: boolean;
}

/** Long enough for another broker process's largest transaction (a few ms), short enough that a stuck peer
 *  stalls this event loop for at most this long before the write fails with STORE_FAILED. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** One queue per database file per process (see the module comment). Entries go when no store uses them. */
const fileQueues = new Map<string, { tail: Promise<unknown>; users: number }>();
let memoryDatabases = 0;

/** Opens (creating if needed) the database file and brings its schema up to date. Rejects with STORE_FAILED
 *  when the file cannot be opened or migrated. */
export async function openSqliteStore(opts: SqliteStoreOptions): Promise<KyselyStore> {
  const inMemory = opts.file === ':memory:';
  let raw: BetterSqlite3.Database;
  if (!inMemory) prepareFile(opts.file, opts.allowGroupReadable ?? false);
  try {
    raw = new BetterSqlite3(opts.file);
  } catch (cause) {
    throw new BrokerError('STORE_FAILED', `cannot open SQLite database '${opts.file}': ${String(cause)}`, { cause });
  }
  try {
    const mode = raw.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && mode !== 'wal') throw new Error(`journal_mode is '${String(mode)}', WAL unavailable`);
    // in memory there is nothing to sync; on a file, walSync makes each commit durable (module comment)
    raw.pragma(inMemory ? 'synchronous = FULL' : 'synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
    // savepoint journals in memory (module comment)
    raw.pragma('temp_store = MEMORY');
    raw.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`);
    // checkpoints run on a worker thread (checkpointer.ts); this one is for a worker that is gone
    if (!inMemory) raw.pragma(`wal_autocheckpoint = ${FALLBACK_PAGES}`);
    for (const [name, value] of Object.entries(opts.pragmas ?? {})) raw.pragma(`${name} = ${value}`);
  } catch (cause) {
    raw.close();
    throw new BrokerError('STORE_FAILED', `cannot set up SQLite database '${opts.file}': ${String(cause)}`, {
      cause,
    });
  }

  const queueKey = inMemory ? `:memory:${++memoryDatabases}` : fs.realpathSync(opts.file);
  const queue = fileQueues.get(queueKey) ?? { tail: Promise.resolve(), users: 0 };
  queue.users++;
  fileQueues.set(queueKey, queue);

  // many sessions' writes share one transaction and one fsync (group-commit.ts), in the file's turn
  const wal = inMemory ? undefined : walSync(fs.realpathSync(opts.file));
  const checkpointer = inMemory ? undefined : new Checkpointer(fs.realpathSync(opts.file));
  const committer = new GroupCommitter({
    withConnection: (body) => {
      // the group holds the connection: prepared statements may run on it synchronously (kysely/prepared.ts)
      const held = (conn: Kysely<Database>) => {
        const unregister = registerSyncConnection(conn, execute);
        return body(conn).finally(unregister);
      };
      const turn = queue.tail.then(
        () => db.connection().execute(held),
        () => db.connection().execute(held),
      );
      queue.tail = turn.catch(() => undefined);
      return turn;
    },
    inTransaction: () => raw.inTransaction,
    ...(wal ? { sync: wal.sync } : {}),
    ...(checkpointer ? { afterCommit: () => checkpointer.afterCommit() } : {}),
  });
  let reader: Kysely<Database> | undefined;
  let closing = false;
  const driver: StoreDriver = {
    dialect: 'sqlite',
    // after close, the writer's (destroyed) handle: the read fails instead of opening the file again
    ...(inMemory ? {} : { reader: () => (closing ? db : (reader ??= openReader(queueKey, opts.busyTimeoutMs, idle))) }),
    write<T>(_db: Kysely<Database>, fn: (trx: Kysely<Database>) => Promise<T>, opts?: BatchOptions): Promise<T> {
      return committer.write(fn, opts?.provisional);
    },
    stats: () => ({ ...committer.stats, ...(checkpointer ? { checkpoints: { ...checkpointer.stats } } : {}) }),
    async lockForMigration() {
      // BEGIN IMMEDIATE already holds the database's write lock for the whole transaction.
    },
    isTransient() {
      // SQLITE_BUSY has already waited busy_timeout; running again would only double the stall.
      return false;
    },
    async onClose() {
      closing = true;
      await reader?.destroy();
      wal?.close();
      if (--queue.users === 0) fileQueues.delete(queueKey);
      await checkpointer?.close();
    },
  };

  const database = withStatementCache(raw);
  const execute = executor(database);
  // the writer's connection, for a prepared read while no transaction is open on it (openReader)
  const read = executor(database, true);
  const idle = (): SyncExecute | undefined => (raw.inTransaction ? undefined : read);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return openKyselyStore(db, driver, opts.clock, opts.nodeId);
}

/** Runs a statement synchronously on a connection's statement cache: the rows of a reader, none otherwise.
 *  `readOnly`: a statement that writes is refused (a read must never write outside the group committer). */
function executor(database: { prepare(q: string): BetterSqlite3.Statement }, readOnly = false): SyncExecute {
  return (text: string, parameters: readonly unknown[]): unknown[] => {
    const stmt = database.prepare(text);
    if (readOnly && !stmt.readonly) throw new Error(`a read ran a statement that writes: ${text}`);
    if (stmt.reader) return stmt.all(...parameters);
    stmt.run(...parameters);
    return [];
  };
}

/** The connection reads outside a write run on (module comment): query_only, so a read that writes fails loudly.
 *  A prepared read runs synchronously, on the writer's connection when `writer()` offers it (no transaction
 *  open there: it sees the last commit, from a page cache that every commit leaves warm), else on this one
 *  (a group's transaction is open: this connection reads the last commit without waiting, but SQLite drops
 *  its page cache whenever another connection has committed, so its reads cost a few page reads each). */
function openReader(
  file: string,
  busyTimeoutMs: number | undefined,
  writer: () => SyncExecute | undefined,
): Kysely<Database> {
  const raw = new BetterSqlite3(file);
  try {
    raw.pragma('query_only = ON');
    raw.pragma(`busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`);
  } catch (e) {
    raw.close();
    throw e;
  }
  const database = withStatementCache(raw);
  const own = executor(database);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  registerSyncConnection(db, (text, parameters) => (writer() ?? own)(text, parameters));
  return db;
}

/** fdatasync of `file`'s WAL, off the event loop, on one handle kept open from the first sync on: a write-back
 *  error is reported once to each handle open when it happened (Linux), so a handle opened afresh for each sync
 *  could miss an error SQLite's own checkpoint had already been told of. SQLite replaces the WAL file only when
 *  the last connection closes, and ours stays open while the store does. The first sync also syncs the
 *  directory, so the WAL file itself survives a power loss. */
function walSync(file: string): { sync: () => Promise<void>; close: () => void } {
  const wal = `${file}-wal`;
  let handle: Promise<fs.promises.FileHandle> | undefined;
  const close = () => {
    // FileHandle.close waits for a sync still running on it
    void handle?.then((h) => h.close()).catch(() => undefined);
    handle = undefined;
  };
  const sync = async () => {
    handle ??= (async () => {
      const h = await fs.promises.open(wal, 'r+');
      const dir = await fs.promises.open(path.dirname(wal), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      return h;
    })();
    await (await handle).datasync();
  };
  return { sync, close };
}

/** Permission bits that let group or others read or write a file. */
const SHARED_BITS = 0o066;

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/** Before SQLite opens `file`: creates its directory (0700) and the file itself (0600) when missing, refuses
 *  an existing file group or others may read or write (unless `allowShared`), and makes leftover -wal/-shm
 *  files as private as the main file. Throws CFG_INVALID for a refused mode, STORE_FAILED otherwise. */
function prepareFile(file: string, allowShared: boolean): void {
  const abs = path.resolve(file);
  try {
    const dir = path.dirname(abs);
    const created = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) fs.chmodSync(dir, 0o700); // exactly 0700, whatever the umask
    let fd: number | undefined;
    try {
      fd = fs.openSync(abs, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.fchmodSync(fd, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  } catch (cause) {
    throw new BrokerError('STORE_FAILED', `cannot open SQLite database '${file}': ${String(cause)}`, { cause });
  }
  if (allowShared) return;
  const mode = fs.statSync(abs).mode;
  if ((mode & SHARED_BITS) !== 0) {
    throw new BrokerError(
      'CFG_INVALID',
      `store.path: ${abs} is readable or writable by group or others (mode ${octal(mode)}) and holds ` +
        `password-equivalent DIGEST-MD5 secrets: run \`chmod 600 ${abs}\`, or set store.allowGroupReadable ` +
        `(--allow-group-readable) to accept it`,
    );
  }
  for (const sidecar of [`${abs}-wal`, `${abs}-shm`]) {
    try {
      if ((fs.statSync(sidecar).mode & SHARED_BITS) !== 0) fs.chmodSync(sidecar, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new BrokerError(
        'CFG_INVALID',
        `store.path: cannot make ${sidecar} private (run \`chmod 600 ${sidecar}\`): ${String(e)}`,
        { cause: e },
      );
    }
  }
}

/** Prepared statements a cache generation holds (withStatementCache). Kysely's SQLite driver prepares every query
 *  anew, and parsing was a fifth of an allocation's time; the store issues a few dozen distinct statements, so
 *  this holds them all. */
const STATEMENT_CACHE_SIZE = 256;

/** The database as Kysely's SqliteDialect sees it, reusing prepared statements. Nearly least recently used goes,
 *  in two generations: a statement is looked up in the young one, then in the old one, from which it is copied
 *  into the young one; when the young one holds STATEMENT_CACHE_SIZE it becomes the old one and the old one's
 *  statements go (so at most twice that many are kept, and every statement used since the last turnover stays).
 *  A hit in the young one, which is every hit on the hot path, is one Map lookup: an exact LRU moved the
 *  statement to the end of its Map on every hit (a delete and a set on a long key, each session's ten). */
function withStatementCache(
  raw: BetterSqlite3.Database,
): SqliteDatabase & { prepare(q: string): BetterSqlite3.Statement } {
  let young = new Map<string, BetterSqlite3.Statement>();
  let old = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(query: string) {
      let stmt = young.get(query);
      if (stmt !== undefined) return stmt;
      stmt = old.get(query) ?? raw.prepare(query);
      young.set(query, stmt);
      if (young.size >= STATEMENT_CACHE_SIZE) {
        old = young;
        young = new Map();
      }
      return stmt;
    },
  };
}
