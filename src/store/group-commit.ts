/** @module store/group-commit: many callers' write transactions in one database transaction and one commit
 *  (one fsync), each still all-or-nothing and each acknowledged only after that commit.
 *
 *  A write that arrives while a group runs waits for the next group; a group takes every write waiting when it
 *  starts (at most MAX_GROUP). Inside the group each write runs under a savepoint of its own: one that throws
 *  is rolled back to its savepoint and rejected alone, the others go on. The group's promises settle after
 *  COMMIT returns (with synchronous=FULL: after the fsync), so nothing is acknowledged before it is on disk.
 *  If the database rolls the whole transaction back by itself (SQLITE_FULL, SQLITE_IOERR), or COMMIT fails,
 *  every write of the group that had run is rejected with that error, and the writes not yet run go to the
 *  next group. A lone write runs without a savepoint, exactly as a plain transaction.
 *
 *  Under load this turns N fsyncs into one: at concurrency 50, a TSP offer and accept no longer wait behind 49
 *  other sessions' fsyncs each. Used by the SQLite driver (sqlite.ts); PostgreSQL commits concurrently on its
 *  own connections and groups fsyncs itself (commit_delay), so it does not need this. */

import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The most writes one group takes (bounds how long one group holds the database). */
export const MAX_GROUP = 64;

export interface CommitStats {
  /** Write transactions asked for. */
  writes: number;
  /** Database commits that carried them (writes / commits = the mean group). */
  commits: number;
  largestGroup: number;
}

export interface GroupTarget {
  /** Runs `body` on the connection when it is this database's turn (the file's write queue). */
  withConnection(body: (conn: Kysely<Database>) => Promise<void>): Promise<void>;
  /** Whether a transaction is still open on the connection. */
  inTransaction(): boolean;
}

interface Member {
  fn: (conn: Kysely<Database>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class GroupCommitter {
  readonly stats: CommitStats = { writes: 0, commits: 0, largestGroup: 0 };
  private readonly waiting: Member[] = [];
  private draining = false;

  constructor(private readonly target: GroupTarget) {}

  write<T>(fn: (conn: Kysely<Database>) => Promise<T>): Promise<T> {
    this.stats.writes++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ fn, resolve: resolve as (v: unknown) => void, reject });
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
        const group = this.waiting.splice(0, MAX_GROUP);
        await this.target
          .withConnection((conn) => this.runGroup(conn, group))
          .catch((err: unknown) => {
            // BEGIN failed (another process holds the lock past busy_timeout), or the connection is gone
            for (const m of group) m.reject(err);
          });
        // let the I/O that arrived during the commit ask too before the next group starts
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.draining = false;
    }
  }

  private async runGroup(conn: Kysely<Database>, group: Member[]): Promise<void> {
    await sql`begin immediate`.execute(conn);
    try {
      await this.runMembers(conn, group);
    } catch (err) {
      // a savepoint statement itself failed: leave no transaction open for the next group
      if (this.target.inTransaction()) await sql`rollback`.execute(conn).catch(() => undefined);
      throw err;
    }
  }

  private async runMembers(conn: Kysely<Database>, group: Member[]): Promise<void> {
    const alone = group.length === 1;
    const done: [Member, unknown][] = [];
    for (let i = 0; i < group.length; i++) {
      const m = group[i]!;
      if (!alone) await sql`savepoint group_member`.execute(conn);
      try {
        const value = await m.fn(conn);
        if (!alone) await sql`release savepoint group_member`.execute(conn);
        done.push([m, value]);
      } catch (err) {
        if (!this.target.inTransaction()) {
          // the database rolled everything back: nothing of this group is on disk; the rest try again
          m.reject(err);
          for (const [d] of done) d.reject(err);
          this.waiting.unshift(...group.slice(i + 1));
          return;
        }
        if (alone) {
          await sql`rollback`.execute(conn);
          m.reject(err);
          return;
        }
        await sql`rollback to savepoint group_member`.execute(conn);
        await sql`release savepoint group_member`.execute(conn);
        m.reject(err);
      }
    }
    try {
      await sql`commit`.execute(conn);
    } catch (err) {
      if (this.target.inTransaction()) await sql`rollback`.execute(conn).catch(() => undefined);
      for (const [d] of done) d.reject(err);
      return;
    }
    this.stats.commits++;
    this.stats.largestGroup = Math.max(this.stats.largestGroup, group.length);
    for (const [d, value] of done) d.resolve(value);
  }
}
