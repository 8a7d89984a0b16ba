/** @module store/group-commit: many callers' write transactions in one database transaction and one commit
 *  (one fsync), each still all-or-nothing and each acknowledged only after that commit.
 *
 *  A write that arrives while a group runs waits for the next group; a group takes every write waiting when it
 *  starts (at most MAX_GROUP). Inside the group each write runs under a savepoint of its own: one that throws
 *  is rolled back to its savepoint and rejected alone, the others go on. The group's promises settle once its
 *  commit is on disk: after COMMIT returns when COMMIT syncs (synchronous=FULL), or, when the target syncs on
 *  its own (sqlite.ts: synchronous=NORMAL and an fdatasync of the WAL file on libuv's thread pool), after a
 *  sync that began after the COMMIT. The next group runs while that sync does, and shares the one after it:
 *  the event loop never waits for the disk, and at most one sync runs with one more queued behind it. A sync
 *  that fails rejects its groups and every write after it (the store must be reopened).
 *  If the database rolls the whole transaction back by itself (SQLITE_FULL, SQLITE_IOERR), or COMMIT fails,
 *  every write of the group that had run is rejected with that error, and the writes not yet run go to the
 *  next group. A lone write runs without a savepoint, exactly as a plain transaction.
 *
 *  Under load this turns N fsyncs into one: at concurrency 50, a TSP offer and accept no longer wait behind 49
 *  other sessions' fsyncs each. Used by the SQLite driver (sqlite.ts); PostgreSQL commits concurrently on its
 *  own connections and groups fsyncs itself (commit_delay), so it does not need this. */

import type { Kysely } from 'kysely';
import { execText } from './kysely/prepared.js';
import type { Database } from './schema.js';
import type { WriteStats } from './types.js';

/** The most writes one group takes (bounds how long one group holds the database). */
export const MAX_GROUP = 64;

/** What the committer counts: writes asked for, the commits that carried them (writes / commits = the mean
 *  group), the largest group, and writes acknowledged at their commit before a sync (BatchOptions.provisional). */
export type CommitStats = Required<Omit<WriteStats, 'checkpoints'>>;

export interface GroupTarget {
  /** Runs `body` on the connection when it is this database's turn (the file's write queue). */
  withConnection(body: (conn: Kysely<Database>) => Promise<void>): Promise<void>;
  /** Whether a transaction is still open on the connection. */
  inTransaction(): boolean;
  /** Makes every commit so far durable, off the event loop (sqlite.ts: fdatasync of the WAL file, the database
   *  running with synchronous=NORMAL). Absent when COMMIT itself is durable (or nothing is: ':memory:'). */
  sync?(): Promise<void>;
  /** Told after each commit that wrote; a promise returned holds the next group back until it settles
   *  (checkpointer.ts: a WAL checkpoint that must run with no write beside it). */
  afterCommit?(): Promise<void> | undefined;
}

interface Member {
  fn: (conn: Kysely<Database>) => Promise<unknown>;
  /** Settled at its commit, without waiting for the sync (BatchOptions.provisional). */
  provisional: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class GroupCommitter {
  readonly stats: CommitStats = { writes: 0, commits: 0, largestGroup: 0, provisional: 0 };
  private readonly waiting: Member[] = [];
  private draining = false;
  private syncing: Promise<void> | undefined;
  /** Called when the waiting writes reach MAX_GROUP (drain waits on it beside the sync). */
  private onFull: (() => void) | undefined;
  private nextSync: Promise<void> | undefined;
  /** Set for good when a sync failed: every write is refused (beginSync). */
  private broken: Error | undefined;

  constructor(private readonly target: GroupTarget) {}

  /** `provisional`: see BatchOptions. */
  write<T>(fn: (conn: Kysely<Database>) => Promise<T>, provisional = false): Promise<T> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    this.stats.writes++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ fn, provisional, resolve: resolve as (v: unknown) => void, reject });
      if (this.waiting.length >= MAX_GROUP) this.onFull?.();
      if (!this.draining) {
        this.draining = true;
        // after the event loop's current round of I/O: every datagram already read asks first, so the group
        // holds them all (started at once, a group would run to its commit before the next callback)
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length) {
        if (this.broken !== undefined) {
          // a sync failed while these waited: none of them may commit
          for (const m of this.waiting.splice(0)) m.reject(this.broken);
          break;
        }
        const group = this.waiting.splice(0, MAX_GROUP);
        let committed: [Member, unknown][] = [];
        await this.target
          .withConnection(async (conn) => void (committed = await this.runGroup(conn, group)))
          .catch((err: unknown) => {
            // BEGIN failed (another process holds the lock past busy_timeout), or the connection is gone
            for (const m of group) m.reject(err);
          });
        // settled once durable
        if (committed.length) {
          this.settleWhenDurable(committed);
          const hold = this.target.afterCommit?.();
          if (hold !== undefined) await hold;
        }
        // The next group starts when that sync is done (or a full group waits): writes gather meanwhile, as
        // they did while a synchronous fsync blocked the loop, so a group stays large and its pages are written
        // once; the loop is free to read and answer datagrams in the meantime. Then let the I/O that arrived
        // during the commit ask too.
        if (this.syncing !== undefined && this.waiting.length < MAX_GROUP)
          await Promise.race([this.syncing.catch(() => undefined), this.full()]);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.draining = false;
    }
  }

  private async runGroup(conn: Kysely<Database>, group: Member[]): Promise<[Member, unknown][]> {
    await execText(conn, 'begin immediate');
    try {
      return await this.runMembers(conn, group);
    } catch (err) {
      // a savepoint statement itself failed: leave no transaction open for the next group
      if (this.target.inTransaction()) await execText(conn, 'rollback').catch(() => undefined);
      throw err;
    }
  }

  /** Runs the members and commits; returns those committed (the others are rejected here already). */
  private async runMembers(conn: Kysely<Database>, group: Member[]): Promise<[Member, unknown][]> {
    const alone = group.length === 1;
    const done: [Member, unknown][] = [];
    for (let i = 0; i < group.length; i++) {
      const m = group[i]!;
      if (!alone) await execText(conn, 'savepoint group_member');
      try {
        const value = await m.fn(conn);
        if (!alone) await execText(conn, 'release savepoint group_member');
        done.push([m, value]);
      } catch (err) {
        if (!this.target.inTransaction()) {
          // the database rolled everything back: nothing of this group is on disk; the rest try again
          m.reject(err);
          for (const [d] of done) d.reject(err);
          this.waiting.unshift(...group.slice(i + 1));
          return [];
        }
        if (alone) {
          await execText(conn, 'rollback');
          m.reject(err);
          return [];
        }
        await execText(conn, 'rollback to savepoint group_member');
        await execText(conn, 'release savepoint group_member');
        m.reject(err);
      }
    }
    try {
      await execText(conn, 'commit');
    } catch (err) {
      if (this.target.inTransaction()) await execText(conn, 'rollback').catch(() => undefined);
      for (const [d] of done) d.reject(err);
      return [];
    }
    this.stats.commits++;
    this.stats.largestGroup = Math.max(this.stats.largestGroup, group.length);
    return done;
  }

  private settleWhenDurable(committed: [Member, unknown][]): void {
    if (this.target.sync === undefined) {
      for (const [d, value] of committed) d.resolve(value);
      return;
    }
    // A provisional write is acknowledged now; the sync asked for by the next durable write covers it (it
    // begins after this commit, and the WAL is written in order). A group of provisional writes alone asks none.
    // After a failed sync nothing is acknowledged: this group ran while it failed (a full group).
    if (this.broken !== undefined) {
      for (const [d] of committed) d.reject(this.broken);
      return;
    }
    const done: [Member, unknown][] = [];
    for (const entry of committed) {
      if (entry[0].provisional) entry[0].resolve(entry[1]);
      else done.push(entry);
    }
    this.stats.provisional += committed.length - done.length;
    if (done.length === 0) return;
    this.durable().then(
      () => {
        for (const [d, value] of done) d.resolve(value);
      },
      (err: unknown) => {
        for (const [d] of done) d.reject(err);
      },
    );
  }

  private full(): Promise<void> {
    return new Promise((r) => {
      this.onFull = () => {
        this.onFull = undefined;
        r();
      };
    });
  }

  /** Resolves after a sync that began after this call: the one running began before it (it may miss this
   *  commit), so everyone who asks while it runs shares the next one. */
  private durable(): Promise<void> {
    if (this.syncing === undefined) return this.beginSync();
    this.nextSync ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.nextSync = undefined;
        return this.beginSync();
      });
    return this.nextSync;
  }

  private beginSync(): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const p: Promise<void> = this.target.sync!().then(
      () => {
        if (this.syncing === p) this.syncing = undefined;
      },
      (err: unknown) => {
        if (this.syncing === p) this.syncing = undefined;
        // What a failed fsync left on disk is unknown, and a later fsync that succeeds would not say (the
        // kernel may have dropped the dirty pages): refuse every write from now on, as PostgreSQL does.
        this.broken ??= new Error(`the database's WAL could not be synced to disk (${String(err)}); restart`, {
          cause: err,
        });
        throw this.broken;
      },
    );
    this.syncing = p;
    return p;
  }
}
