/** The Store contract on PostgreSQL. Runs only when TSP_TEST_PG_URL names a server we may create databases on
 *  (e.g. postgres://postgres@127.0.0.1:5432/postgres); each run uses a fresh database, dropped afterwards. */

import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import pg from 'pg';
import { openPostgresStore } from '../../../src/store/open.js';
import { storeContract } from './contract.js';
import { allocatorContract } from './allocator-contract.js';
import { leaseChunksContract } from './lease-chunks-contract.js';
import { reverseDnsContract } from './reverse-dns-contract.js';
import { sharedLinkContract } from './shared-link-contract.js';
import { staticTunnelsContract } from './static-tunnels-contract.js';

const adminUrl = process.env.TSP_TEST_PG_URL;

if (adminUrl === undefined || adminUrl === '') {
  describe('Store contract: postgres', { skip: 'set TSP_TEST_PG_URL to run it' }, () => {});
} else {
  const database = `tsp_store_test_${randomBytes(4).toString('hex')}`;
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  // Lease chunks on a database with a language collation (ICU), as most installations have: text does not
  // sort as bytes there, and the lookup of a node's own chunks must not depend on it.
  const icu = new URL(url);
  icu.pathname = `/${database}_icu`;
  describe('postgres', () => {
    before(async () => {
      await admin(`create database ${database}`);
      await admin(
        `create database ${database}_icu template template0 locale_provider icu icu_locale 'en' locale 'C.UTF-8'`,
      );
    });
    after(async () => {
      await admin(`drop database if exists ${database} with (force)`);
      await admin(`drop database if exists ${database}_icu with (force)`);
    });
    storeContract('postgres', () => openPostgresStore({ url: url.toString() }));
    allocatorContract('postgres', () => openPostgresStore({ url: url.toString() }));
    reverseDnsContract('postgres', () => openPostgresStore({ url: url.toString() }));
    staticTunnelsContract('postgres', () => openPostgresStore({ url: url.toString() }));
    leaseChunksContract('postgres (ICU collation)', () => openPostgresStore({ url: icu.toString() }));
    sharedLinkContract('postgres', () => openPostgresStore({ url: url.toString() }));
  });
}
