/** @module test/helpers/pg: a fresh PostgreSQL database per test file, on the server TSP_TEST_PG_URL names (CI
 *  starts one: .ci/run), dropped when the file ends. Without TSP_TEST_PG_URL the tests that need it skip, and
 *  the test runner lists them as skipped with this reason. */

import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_SKIP = process.env.TSP_TEST_PG_URL ? false : 'set TSP_TEST_PG_URL to run it (PostgreSQL)';

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TSP_TEST_PG_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export interface TempDatabase {
  url: string;
  /** One SQL statement on the database (checks that read rows directly). */
  query<T extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

export async function createTempDatabase(prefix: string): Promise<TempDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${name}`);
  const url = new URL(process.env.TSP_TEST_PG_URL!);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async query(text, values) {
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      try {
        return (await c.query(text, values)).rows;
      } finally {
        await c.end();
      }
    },
    drop: () => admin(`drop database if exists ${name} with (force)`),
  };
}
