/** @module store/migrations: the versioned schema, applied at open.
 *  MIGRATIONS is append-only: never edit a released step, add the next version. `migrate` runs every pending
 *  step in one write transaction that first takes the dialect's migration lock (SQLite: BEGIN IMMEDIATE, so a
 *  second process opening the same file waits; PostgreSQL: an advisory transaction lock), and records each step
 *  in `schema_migrations`. Opening an up-to-date database therefore changes nothing.
 *  We do not use Kysely's Migrator: on SQLite it runs DDL outside a transaction and takes no lock, so two
 *  processes opening a fresh file at once could both try to create the tables.
 *  The DDL is built with Kysely's schema builder and portable types; the dialects differ in how an id is
 *  generated (SQLite AUTOINCREMENT, so ids are never reused after a delete; PostgreSQL identity) and in one index
 *  a single-node SQLite store does without (version 10). */

import { sql, type ColumnDefinitionBuilder, type CreateTableBuilder, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  name: string;
  up(db: Kysely<Database>, dialect: Dialect): Promise<void>;
}

function withId<T extends string>(table: CreateTableBuilder<T, never>, dialect: Dialect): CreateTableBuilder<T, 'id'> {
  return dialect === 'sqlite'
    ? table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    : table.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity());
}

const notNull = (c: ColumnDefinitionBuilder) => c.notNull();

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    // size: the initial schema, one table after another (a declarative list); splitting it would only scatter it.
    async up(db, dialect) {
      const schema = db.schema;
      await schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', notNull)
        .execute();

      // No plaintext password column, ever: an argon2id PHC string for PLAIN and web login, and the DIGEST-MD5
      // credential X = MD5(user:realm:pass) for the realm it was made for (docs/protocol.md §5.4).
      await withId(schema.createTable('accounts'), dialect)
        .addColumn('username', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', notNull)
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('limits', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('password_hash', 'text', notNull)
        .addColumn('digest_ha1', 'text', notNull)
        .addColumn('digest_realm', 'text', notNull)
        .addColumn('created_at', 'bigint', notNull)
        .addColumn('updated_at', 'bigint', notNull)
        .addCheckConstraint('accounts_role_check', sql`role in ('admin', 'user')`)
        .addCheckConstraint('accounts_disabled_check', sql`disabled in (0, 1)`)
        .execute();

      // One allocation per owner and pool: the unique constraints are what make stickiness race-free.
      // NULLs are distinct in both dialects, so anonymous rows never collide on account_id and vice versa.
      await withId(schema.createTable('allocations'), dialect)
        .addColumn('pool', 'text', notNull)
        .addColumn('pool_prefix', 'text', notNull)
        .addColumn('prefix', 'text', notNull)
        .addColumn('prefix_len', 'integer', notNull)
        .addColumn('account_id', 'bigint', (c) => c.references('accounts.id'))
        .addColumn('lease_id', 'text')
        .addColumn('created_at', 'bigint', notNull)
        .addUniqueConstraint('allocations_account_pool', ['account_id', 'pool'])
        .addUniqueConstraint('allocations_lease_pool', ['lease_id', 'pool'])
        .addCheckConstraint('allocations_owner_check', sql`(account_id is null) <> (lease_id is null)`)
        .execute();

      // The buddy-claim tree of each pool (kysely-store.ts, allocate). The primary key is the constraint that
      // keeps blocks from overlapping; its index also serves the ordered "next free block" scan.
      await schema
        .createTable('prefix_claims')
        .addColumn('pool_prefix', 'text', notNull)
        .addColumn('prefix_len', 'integer', notNull)
        .addColumn('addr_hex', 'text', notNull)
        .addColumn('kind', 'text', notNull)
        .addColumn('children', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('allocation_id', 'bigint', (c) => c.references('allocations.id'))
        .addPrimaryKeyConstraint('prefix_claims_pk', ['pool_prefix', 'prefix_len', 'addr_hex'])
        .addCheckConstraint('prefix_claims_kind_check', sql`kind in ('block', 'split')`)
        .execute();

      await withId(schema.createTable('tunnels'), dialect)
        .addColumn('account_id', 'bigint', (c) => c.references('accounts.id').onDelete('set null'))
        .addColumn('lease_id', 'text')
        .addColumn('type', 'text', notNull)
        .addColumn('transport', 'text', notNull)
        .addColumn('client_ipv4', 'text', notNull)
        .addColumn('client_port', 'integer', notNull)
        .addColumn('server_ipv4', 'text', notNull)
        .addColumn('server_ipv6', 'text', notNull)
        .addColumn('client_ipv6', 'text', notNull)
        .addColumn('prefix', 'text')
        .addColumn('prefix_len', 'integer')
        .addColumn('keepalive_interval', 'integer', notNull)
        .addColumn('lifetime_s', 'integer', notNull)
        .addColumn('state', 'text', notNull)
        .addColumn('created_at', 'bigint', notNull)
        .addColumn('established_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('end_reason', 'text')
        .addColumn('last_seen_at', 'bigint')
        .addColumn('rx_packets', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('rx_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('tx_packets', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('tx_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addCheckConstraint('tunnels_state_check', sql`state in ('offered', 'established', 'ended')`)
        .execute();
      // listTunnels: newest first, optionally by state ('live' is two states) or by account.
      await schema.createIndex('tunnels_created').on('tunnels').columns(['created_at', 'id']).execute();
      await schema.createIndex('tunnels_state_created').on('tunnels').columns(['state', 'created_at']).execute();
      await schema.createIndex('tunnels_account_created').on('tunnels').columns(['account_id', 'created_at']).execute();

      await withId(schema.createTable('audit'), dialect)
        .addColumn('at', 'bigint', notNull)
        .addColumn('actor', 'text', notNull)
        .addColumn('action', 'text', notNull)
        .addColumn('target', 'text')
        .addColumn('detail', 'text')
        .execute();
      await schema.createIndex('audit_at').on('audit').columns(['at', 'id']).execute();
      await schema.createIndex('audit_action_at').on('audit').columns(['action', 'at']).execute();
      await schema.createIndex('audit_actor_at').on('audit').columns(['actor', 'at']).execute();
    },
  },
  {
    version: 2,
    name: 'admin API tokens and web sessions',
    async up(db, dialect) {
      const schema = db.schema;
      // Only a hash of each token or session id is kept: reading the database does not let anyone in.
      await withId(schema.createTable('api_tokens'), dialect)
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_by', 'text', notNull)
        .addColumn('created_at', 'bigint', notNull)
        .addColumn('last_used_at', 'bigint')
        .execute();
      await schema
        .createTable('web_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'bigint', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('csrf_token', 'text', notNull)
        .addColumn('created_at', 'bigint', notNull)
        .addColumn('expires_at', 'bigint', notNull)
        .execute();
      await schema.createIndex('web_sessions_expires').on('web_sessions').column('expires_at').execute();
    },
  },
  {
    version: 3,
    name: 'API token expiry',
    async up(db) {
      // nullable: tokens made before this version (and new ones without an expiry) never expire
      await db.schema.alterTable('api_tokens').addColumn('expires_at', 'bigint').execute();
    },
  },
  {
    version: 4,
    name: 'web-only accounts: DIGEST-MD5 secret nullable',
    async up(db, dialect) {
      // An account that never uses TSP keeps no DIGEST-MD5 secret (password-equivalent, MD5-fast to crack), so
      // digest_ha1 and digest_realm become nullable. PostgreSQL drops NOT NULL in place. SQLite cannot change a
      // column's constraints; its usual remedy, rebuilding the table, would DROP accounts while allocations,
      // tunnels and web_sessions reference it, and with foreign_keys on (PRAGMA foreign_keys is a no-op inside
      // this transaction) that DROP first deletes every row: tunnels lose their account_id, web sessions
      // cascade away. So each column is replaced in place instead: add a nullable copy, fill it, drop the old
      // column (SQLite >= 3.35 drops a NOT NULL column no index, constraint or view uses) and rename the copy.
      // Rows, ids and sqlite_sequence are untouched; nothing references these columns.
      if (dialect === 'postgres') {
        for (const column of ['digest_ha1', 'digest_realm'] as const)
          await db.schema
            .alterTable('accounts')
            .alterColumn(column, (c) => c.dropNotNull())
            .execute();
        return;
      }
      for (const column of ['digest_ha1', 'digest_realm'] as const) {
        const copy = `${column}_nullable`;
        await db.schema.alterTable('accounts').addColumn(copy, 'text').execute();
        await sql`update accounts set ${sql.ref(copy)} = ${sql.ref(column)}`.execute(db);
        await db.schema.alterTable('accounts').dropColumn(column).execute();
        await db.schema.alterTable('accounts').renameColumn(copy, column).execute();
      }
    },
  },
  {
    version: 5,
    name: 'traffic history',
    async up(db, dialect) {
      // The dashboard's chart survives a restart: one row per persisted interval (admin/traffic.ts), pruned by
      // age and count, so the table stays small whatever the uptime.
      await withId(db.schema.createTable('traffic_samples'), dialect)
        .addColumn('at', 'bigint', notNull)
        .addColumn('interval_ms', 'integer', notNull)
        .addColumn('rx_bytes', 'bigint', notNull)
        .addColumn('tx_bytes', 'bigint', notNull)
        .addColumn('rx_packets', 'bigint', notNull)
        .addColumn('tx_packets', 'bigint', notNull)
        .execute();
      await db.schema.createIndex('traffic_samples_at').on('traffic_samples').columns(['at', 'id']).execute();
    },
  },
  {
    version: 6,
    name: 'lease chunks',
    async up(db) {
      // Anonymous leases come out of chunks the broker holds (store/lease-chunks.ts): a chunk is an allocation
      // of its own (lease_id 'chunk:<node>:<uuid>'), and a lease inside it is one row naming it here. The unique
      // index is what keeps two leases of one chunk apart (NULLs are distinct: other rows never collide).
      await db.schema
        .alterTable('allocations')
        .addColumn('chunk_id', 'bigint', (c) => c.references('allocations.id'))
        .execute();
      await db.schema
        .createIndex('allocations_chunk_prefix')
        .unique()
        .on('allocations')
        .columns(['chunk_id', 'prefix'])
        .execute();
    },
  },
  {
    version: 7,
    name: 'reverse dns delegations',
    async up(db, dialect) {
      // An account's reverse-DNS name servers (wanted) and the ip6.arpa names published for it at the
      // operator's DNS server (broker/reverse-dns.ts). Deleting the account keeps the row with account_id NULL,
      // so the broker still knows what to withdraw from DNS, even when the CLI did the deleting.
      await withId(db.schema.createTable('reverse_delegations'), dialect)
        .addColumn('account_id', 'bigint', (c) => c.unique().references('accounts.id').onDelete('set null'))
        .addColumn('servers', 'text', notNull)
        .addColumn('published', 'text', notNull)
        .addColumn('published_servers', 'text', notNull)
        .addColumn('error', 'text')
        .addColumn('updated_at', 'bigint', notNull)
        .execute();
    },
  },
  {
    version: 8,
    name: 'static 6in4 tunnels',
    async up(db, dialect) {
      // One static tunnel per account (it carries the account's own link addresses: broker/static-tunnels.ts),
      // named by a host name unique across accounts, which is what dyndns2 clients send. The endpoint is the
      // IPv4 the tunnel's protocol-41 packets go to (null: not known yet, nothing in the data plane). Only the
      // update key's SHA-256 is kept. The live tunnel itself is a `tunnels` row with transport 'static'.
      await withId(db.schema.createTable('static_tunnels'), dialect)
        .addColumn('account_id', 'bigint', (c) => c.notNull().unique().references('accounts.id').onDelete('cascade'))
        .addColumn('hostname', 'text', (c) => c.notNull().unique())
        .addColumn('endpoint', 'text')
        .addColumn('delegate_prefix', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('update_key_hash', 'text')
        .addColumn('created_at', 'bigint', notNull)
        .addColumn('updated_at', 'bigint', notNull)
        .addCheckConstraint('static_tunnels_delegate_check', sql`delegate_prefix in (0, 1)`)
        .execute();
    },
  },
  {
    version: 9,
    name: 'cluster nodes',
    async up(db) {
      // Several brokers on one PostgreSQL (docs/cluster.md): each registers here and heartbeats; `draining` is
      // the operator's (tsp-broker node drain). A tunnel row names the node that carries it, so a restart
      // restores only its own and a node that takes an account's tunnel knows whose copy to end. Rows written
      // before this version have node NULL: the first node to start adopts the live ones (cluster/node.ts).
      await db.schema
        .createTable('nodes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('ipv4', 'text')
        .addColumn('ipv6', 'text')
        .addColumn('capacity', 'integer')
        .addColumn('draining', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('tunnels', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('started_at', 'bigint', notNull)
        .addColumn('heartbeat_at', 'bigint', notNull)
        .addColumn('instance', 'text', notNull)
        .addCheckConstraint('nodes_draining_check', sql`draining in (0, 1)`)
        .execute();
      await db.schema.alterTable('tunnels').addColumn('node', 'text').execute();
      await db.schema.createIndex('tunnels_node_state').on('tunnels').columns(['node', 'state']).execute();
    },
  },
  {
    version: 10,
    name: 'no (node, state) index on a single-node SQLite store',
    async up(db, dialect) {
      // A SQLite store is never clustered (one node), so nothing there asks for tunnels by node; where the
      // cluster code does, it also asks for the live states, which the (state, created_at) index finds. The
      // index cost every session an update at each of its three states and those pages in each commit: about a
      // fifth of a session's store work (docs/architecture.md, Measurements). PostgreSQL keeps it.
      if (dialect === 'sqlite') await db.schema.dropIndex('tunnels_node_state').ifExists().execute();
    },
  },
];

/** The latest schema version this code knows. */
export const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));

/** Applies the pending migrations inside `trx`, which must be a write transaction that already holds the
 *  dialect's migration lock. Returns the versions it applied (empty when the schema was up to date).
 *  A database newer than this code (a version we do not know) is refused: running old code on it could
 *  corrupt data the newer code relies on. */
export async function migrate(trx: Kysely<Database>, dialect: Dialect, now: number): Promise<number[]> {
  await trx.schema
    .createTable('schema_migrations')
    .ifNotExists()
    .addColumn('version', 'integer', (c) => c.primaryKey())
    .addColumn('name', 'text', notNull)
    .addColumn('applied_at', 'bigint', notNull)
    .execute();
  const rows = await trx.selectFrom('schema_migrations').select('version').execute();
  const done = new Set(rows.map((r) => Number(r.version)));
  const unknown = [...done].filter((v) => !MIGRATIONS.some((m) => m.version === v));
  if (unknown.length > 0) {
    throw new Error(
      `database schema has versions ${unknown.join(', ')} unknown to this build (latest ${SCHEMA_VERSION})`,
    );
  }
  const applied: number[] = [];
  for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    await m.up(trx, dialect);
    await trx.insertInto('schema_migrations').values({ version: m.version, name: m.name, applied_at: now }).execute();
    applied.push(m.version);
  }
  return applied;
}
