/** @module store/checkpointer: SQLite's WAL checkpoints on a worker thread of their own, off the event loop.
 *
 *  In WAL mode every commit appends the pages it changed to the -wal file, and a checkpoint copies them back
 *  into the database file. By default the connection that commits runs the checkpoint inside COMMIT once the
 *  WAL holds 1,000 pages: on the broker's event loop, with an fsync of the WAL before the copy and one of the
 *  database file after it. Under a reconnect storm over 100,000 tunnels each session changes index pages all
 *  over the file, and those checkpoints were half of the time COMMIT took (bench:scale: about 15 s of the
 *  event loop's time in a 75 s storm).
 *
 *  Here a worker thread with a connection of its own runs `PRAGMA wal_checkpoint(PASSIVE)` once the WAL holds
 *  PASS_PAGES pages it has not copied, as SQLite's own automatic checkpoint would: the group committer
 *  (group-commit.ts) tells it after each commit, and it reads the WAL's length from the wal-index header in the
 *  -shm file (a few bytes, no lock: a hint only). PASSIVE never blocks the writer; frames committed while it
 *  copies wait for the next pass. The WAL starts over from its beginning only at a write that finds every frame
 *  copied, which a pass racing the writes may never leave; so once the WAL is RESTART_PAGES long the committer
 *  holds the next group back (the event loop runs on) until a pass has run with no write beside it. The
 *  broker's own connection keeps an automatic checkpoint, at FALLBACK_PAGES, for a worker that died: the WAL
 *  stays bounded either way.
 *
 *  Durability does not change: a checkpoint copies a frame only after syncing the WAL that holds it
 *  (synchronous=NORMAL on both connections), and what the broker acknowledges is made durable by its own
 *  fdatasync of the WAL (sqlite.ts), copied or not. */

import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type { WriteStats } from './types.js';

/** A pass starts once the WAL holds this many pages not yet copied (SQLite's own default threshold), so a
 *  page that many commits change is copied once, as before. */
export const PASS_PAGES = 1000;

/** A pass starts at most this often while commits come: without the wal-index header to read, and while a
 *  reader elsewhere (a backup, a sqlite3 shell in a transaction) keeps pages from being copied. */
const PASS_INTERVAL_MS = 50;

/** The longest a held group waits for its pass (a checkpoint's fsync on a slow disk): then it goes on, and the
 *  WAL grows until a later pass catches up. */
export const HOLD_MAX_MS = 1000;

/** A WAL this many pages long (16 MB at SQLite's 4 KB pages) makes the next group wait for a pass of its own. */
export const RESTART_PAGES = 4000;

/** The broker connection's own automatic checkpoint, for a worker that is gone (pages). */
export const FALLBACK_PAGES = 4 * RESTART_PAGES;
/** The longest close() waits for the worker's exit. */
const CLOSE_WAIT_MS = 2000;

/** What a pass reports (from PRAGMA wal_checkpoint's row): `checkpointed` pages of the WAL copied; the WAL's
 *  length comes from the -shm file instead, read at each commit. */
interface PassResult {
  busy: number;
  checkpointed: number;
  error?: string;
}

/** Passes run, passes the committer waited for (the WAL had grown to RESTART_PAGES), passes that failed (an
 *  I/O error: the next tries again), the WAL's length in pages at the last commit and how many of them the
 *  last pass had copied, and whether the worker failed (the connection's own automatic checkpoint has then
 *  taken over). */
export type CheckpointStats = NonNullable<WriteStats['checkpoints']>;

/** The worker, in plain JavaScript so it runs the same from src/ (tsx) and dist/: one pass per message. */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = NORMAL');
db.pragma('wal_autocheckpoint = 0');
parentPort.on('message', (m) => {
  if (m === 'stop') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ busy: r.busy, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ busy: 0, checkpointed: 0, error: String((e && e.message) || e) });
  }
});
`;

const require = createRequire(import.meta.url);

/** Runs the checkpoints of one SQLite file on a worker thread (see the module comment). */
export class Checkpointer {
  readonly stats: CheckpointStats = { passes: 0, held: 0, errors: 0, walPages: 0, copiedPages: 0, failed: false };
  private readonly worker: Worker;
  /** The pass the worker is running, if any. */
  private running: Promise<void> | undefined;
  private finish: (() => void) | undefined;
  private lastStart = 0;
  /** The WAL's length when its running pass began: a result about a WAL started over since is dropped. */
  private passFrames = 0;
  /** The WAL length at which the next group is held (RESTART_PAGES, more after a hold that did not help). */
  private holdAt = RESTART_PAGES;
  private stopped = false;
  /** The -shm file, read for the WAL's length (walFrames). */
  private shm: number | undefined;
  private readonly header = Buffer.alloc(20);

  constructor(private readonly file: string) {
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: { file, driver: require.resolve('better-sqlite3') },
      // plain JavaScript: none of the process's flags (a TypeScript loader, --cpu-prof) applies to it
      execArgv: [],
    });
    this.worker.on('message', (r: PassResult) => this.onResult(r));
    this.worker.on('error', () => this.fail());
    this.worker.on('exit', () => this.fail());
    // keeps the process alive only while a pass or the stop runs (close() stops it); after the listeners,
    // since adding a 'message' listener refs the worker again
    this.worker.unref();
  }

  /** Called by the group committer after each commit. Starts a pass once PASS_PAGES wait to be copied, and
   *  returns a promise the next group must wait for when the WAL has grown to RESTART_PAGES: a pass that runs
   *  with no write beside it, so the next write starts the WAL over. */
  afterCommit(): Promise<void> | undefined {
    if (this.stopped || this.stats.failed) return undefined;
    const frames = this.walFrames();
    if (frames !== undefined) {
      // a WAL shorter than before was started over since
      if (frames < this.stats.walPages) {
        this.stats.copiedPages = 0;
        this.holdAt = RESTART_PAGES;
      }
      this.stats.walPages = frames;
    }
    if (this.stats.walPages >= this.holdAt) {
      // Once for each RESTART_PAGES the WAL grows: if a reader elsewhere keeps it from starting over, the next
      // holds wait for it to grow by as much again instead of holding every commit.
      this.holdAt = this.stats.walPages + RESTART_PAGES;
      this.stats.held++;
      // the running pass may have begun before the last commit: a second one, with nothing committing, copies
      // every frame, and the write it held back then starts the WAL over
      return withTimeout(
        (this.running ?? Promise.resolve()).then(() => this.pass()),
        HOLD_MAX_MS,
      );
    }
    const due =
      Date.now() - this.lastStart >= PASS_INTERVAL_MS &&
      (frames === undefined || frames - this.stats.copiedPages >= PASS_PAGES);
    if (due && this.running === undefined) void this.pass();
    return undefined;
  }

  /** Stops the worker once its pass is done. Its connection closes with it (better-sqlite3 closes a thread's
   *  databases when the thread ends); after the broker's own, it is the last, which copies what is left and
   *  removes the WAL. terminate() rather than waiting for the thread to end by itself: a test process that
   *  waited on the 'exit' event alone was sometimes found with nothing left to run and ended before it. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.running;
    if (this.shm !== undefined) fs.closeSync(this.shm);
    if (this.stats.failed) return;
    this.worker.ref();
    this.worker.postMessage('stop'); // closes the connection itself if it gets there first
    // A worker that ends by itself as terminate() is called may drop its handle before 'exit' is emitted, and
    // an await on nothing else let node:test's process find its event loop empty (CI, routes-broker's
    // before hook): a timer keeps the process alive meanwhile and bounds the wait.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
    try {
      await Promise.race([this.worker.terminate(), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The WAL's last frame (mxFrame): a 32-bit integer in the host's byte order at offset 16 of the wal-index
   *  header, the first bytes of the -shm file (sqlite.org/walformat.html). Undefined when it cannot be read. */
  private walFrames(): number | undefined {
    try {
      this.shm ??= fs.openSync(`${this.file}-shm`, 'r');
      if (fs.readSync(this.shm, this.header, 0, 20, 0) < 20) return undefined;
      return os.endianness() === 'LE' ? this.header.readUInt32LE(16) : this.header.readUInt32BE(16);
    } catch {
      return undefined;
    }
  }

  private pass(): Promise<void> {
    if (this.running !== undefined) return this.running;
    if (this.stopped || this.stats.failed) return Promise.resolve();
    this.lastStart = Date.now();
    this.passFrames = this.stats.walPages;
    this.running = new Promise<void>((resolve) => (this.finish = resolve));
    this.worker.ref();
    this.worker.postMessage('pass');
    return this.running;
  }

  private onResult(r: PassResult): void {
    this.stats.passes++;
    // the WAL's length comes from the -shm file at each commit (without it, no write is ever held back and the
    // connection's own checkpoint at FALLBACK_PAGES bounds the WAL)
    if (r.error !== undefined) this.stats.errors++;
    else if (r.busy === 0 && this.stats.walPages >= this.passFrames) this.stats.copiedPages = r.checkpointed;
    this.settle();
  }

  private fail(): void {
    if (!this.stopped) this.stats.failed = true;
    this.settle();
  }

  private settle(): void {
    const finish = this.finish;
    this.running = undefined;
    this.finish = undefined;
    this.worker.unref();
    finish?.();
  }
}

/** `p`, or nothing after `ms`: a held group goes on either way. */
function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
