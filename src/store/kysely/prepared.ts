/** @module store/kysely/prepared: the statements a TSP session runs, built and compiled once instead of on every
 *  call. Kysely builds an immutable query tree and compiles it to SQL for each execution: about 13 µs of a
 *  16 µs UPDATE on this machine, against 3 µs for the same statement prepared in better-sqlite3. A session
 *  runs about ten statements, so under a reconnect storm that overhead was a fifth of the broker's time.
 *
 *  prepared() builds the query once per dialect with placeholders (param) where the values go, and remembers
 *  the SQL and where each value belongs. Executing it fills the values in and:
 *   - on a SQLite connection the group committer holds (registerSyncConnection), runs the statement directly
 *     on better-sqlite3's statement cache, synchronously: the group holds the connection, so nothing else can
 *     run on it in between, and a read from outside the group still waits for the group's commit;
 *   - anywhere else (PostgreSQL, a SQLite read outside a write), hands the compiled query to Kysely's executor.
 *  The SQL is the one Kysely compiles for the same tree, so both paths mean the same statement; the store
 *  contract suite runs every prepared statement on both dialects. */

import { CompiledQuery, sql, type Compilable, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Runs SQL on a SQLite connection, synchronously (better-sqlite3). */
export type SyncExecute = (sql: string, parameters: readonly unknown[]) => unknown[];

/** Connections (Kysely handles) on which prepared statements run synchronously: a SQLite connection while the
 *  group committer holds it for a transaction (sqlite.ts). */
const syncConnections = new WeakMap<Kysely<Database>, SyncExecute>();

/** Lets prepared statements on `conn` run through `exec` until the returned function is called. */
export function registerSyncConnection(conn: Kysely<Database>, exec: SyncExecute): () => void {
  syncConnections.set(conn, exec);
  return () => syncConnections.delete(conn);
}

/** Runs a statement without values (BEGIN, SAVEPOINT, COMMIT) on `conn`, synchronously where it can. */
export async function execText(conn: Kysely<Database>, text: string): Promise<void> {
  const sync = syncConnections.get(conn);
  if (sync !== undefined) sync(text, []);
  else await sql.raw(text).execute(conn);
}

const MARK = '\u0000tsp-param:';

/** The placeholder for the value named `name`, used where the value goes when building a prepared query. */
export function param<T>(name: string): T {
  return `${MARK}${name}` as T;
}

interface Compiled {
  sql: string;
  query: CompiledQuery['query'];
  /** Per parameter position: the name of the value it takes, or a constant of the query. */
  slots: ({ name: string } | { value: unknown })[];
}

/** A query built and compiled once per dialect, executed with named values. */
export class Prepared<P extends string, O> {
  /** Keyed by the dialect's adapter: SQLite and PostgreSQL compile the same tree differently. Plugins
   *  (withPlugin) keep the adapter and are not part of the key: none is used, and a prepared statement must not
   *  run on a handle that has one. */
  private readonly compiled = new WeakMap<object, Compiled>();

  constructor(private readonly build: (db: Kysely<Database>) => Compilable<O>) {}

  /** The rows (of a SELECT or a RETURNING clause; none otherwise). */
  async execute(db: Kysely<Database>, values: Readonly<Record<P, unknown>>): Promise<O[]> {
    const c = this.compile(db);
    const parameters = c.slots.map((s) => {
      if (!('name' in s)) return s.value;
      const v = values[s.name as P];
      // both drivers would bind a missing value as NULL without a word
      if (v === undefined) throw new Error(`prepared statement: no value for '${s.name}' in ${c.sql}`);
      return v;
    });
    const sync = syncConnections.get(db);
    if (sync !== undefined) return sync(c.sql, parameters) as O[];
    const query: CompiledQuery<O> = { ...CompiledQuery.raw(c.sql, parameters), query: c.query };
    return (await db.executeQuery(query)).rows;
  }

  /** The first row, if any. */
  async first(db: Kysely<Database>, values: Readonly<Record<P, unknown>>): Promise<O | undefined> {
    return (await this.execute(db, values))[0];
  }

  private compile(db: Kysely<Database>): Compiled {
    const key = db.getExecutor().adapter;
    let c = this.compiled.get(key);
    if (c === undefined) {
      const q = this.build(db).compile();
      if (q.sql.includes(MARK)) throw new Error(`prepared statement: a placeholder was inlined into ${q.sql}`);
      const slots = q.parameters.map((v) =>
        typeof v === 'string' && v.startsWith(MARK) ? { name: v.slice(MARK.length) } : { value: v },
      );
      c = { sql: q.sql, query: q.query, slots };
      this.compiled.set(key, c);
    }
    return c;
  }
}

/** A prepared query; its values are named where it is built, by param(name). */
export function prepared<P extends string, O>(build: (db: Kysely<Database>) => Compilable<O>): Prepared<P, O> {
  return new Prepared<P, O>(build);
}
