/** @module store/schema: the Kysely typing of the tables migrations.ts creates. Column names are snake_case,
 *  as in SQL; kysely-store.ts maps rows to the camelCase records of store/types.ts.
 *  Integers that PostgreSQL keeps as int8 (ids, times, counters) come back from pg as strings, so their select
 *  type is `number | string` and every reader converts with Number(). Booleans are integers 0/1 and JSON is
 *  text, so the same SQL runs on SQLite and PostgreSQL. */

import type { ColumnType, Generated } from 'kysely';

/** An int8 column: pg returns it as a string, SQLite as a number. */
export type Int8 = ColumnType<number | string, number, number>;

export interface SettingsTable {
  key: string;
  value: string;
}

export interface AccountsTable {
  id: Generated<number | string>;
  username: string;
  role: string;
  /** 0 or 1. */
  disabled: number;
  /** JSON of AccountLimits. */
  limits: string;
  password_hash: string;
  /** Null (schema version 4) for a web-only account: no DIGEST-MD5 secret. */
  digest_ha1: string | null;
  digest_realm: string | null;
  created_at: Int8;
  updated_at: Int8;
}

export interface AllocationsTable {
  id: Generated<number | string>;
  pool: string;
  /** Canonical text of the pool the block was cut from, e.g. 'fd00::/40'. */
  pool_prefix: string;
  /** Canonical text of the block's first address. */
  prefix: string;
  prefix_len: number;
  account_id: Int8 | null;
  lease_id: string | null;
  created_at: Int8;
  /** The chunk (an allocation of the node's) a lease was cut from, or null (store/lease-chunks.ts). */
  chunk_id: ColumnType<number | string | null, number | null | undefined, number | null>;
}

/** One row per claimed node of a pool's binary prefix tree (see allocate() in kysely-store.ts). */
export interface PrefixClaimsTable {
  pool_prefix: string;
  prefix_len: number;
  /** 32 hex digits of the node's first address: sorts like the address. */
  addr_hex: string;
  /** 'block': allocated whole; 'split': some block lies strictly inside. */
  kind: 'block' | 'split';
  /** For 'split': how many block claims lie inside it. 0 for 'block'. */
  children: number;
  /** For 'block': the allocation that owns it. */
  allocation_id: Int8 | null;
}

export interface TunnelsTable {
  id: Generated<number | string>;
  account_id: Int8 | null;
  lease_id: string | null;
  type: string;
  transport: string;
  client_ipv4: string;
  client_port: number;
  server_ipv4: string;
  server_ipv6: string;
  client_ipv6: string;
  prefix: string | null;
  prefix_len: number | null;
  keepalive_interval: number;
  lifetime_s: number;
  state: string;
  created_at: Int8;
  established_at: Int8 | null;
  ended_at: Int8 | null;
  end_reason: string | null;
  last_seen_at: Int8 | null;
  rx_packets: ColumnType<number | string, number | undefined, number>;
  rx_bytes: ColumnType<number | string, number | undefined, number>;
  tx_packets: ColumnType<number | string, number | undefined, number>;
  tx_bytes: ColumnType<number | string, number | undefined, number>;
  /** Schema version 9: the node that carries (or carried) the tunnel; null for rows from before. */
  node: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Schema version 9: a broker node of a cluster (cluster/node.ts). */
export interface NodesTable {
  name: string;
  /** The addresses clients reach the node on (a redirect lists them), or null. */
  ipv4: string | null;
  ipv6: string | null;
  /** Live tunnels above which the node redirects new sessions, or null for no limit. */
  capacity: number | null;
  /** 0 or 1. */
  draining: ColumnType<number, number | undefined, number>;
  /** Live tunnels at the last heartbeat. */
  tunnels: ColumnType<number, number | undefined, number>;
  started_at: Int8;
  /** 0 once the node stopped cleanly. */
  heartbeat_at: Int8;
  /** A random id of the process that registered the row: two live processes never share a node name. */
  instance: string;
}

export interface AuditTable {
  id: Generated<number | string>;
  at: Int8;
  actor: string;
  action: string;
  target: string | null;
  /** JSON object, or null. */
  detail: string | null;
}

/** Schema version 2. */
export interface ApiTokensTable {
  id: Generated<number | string>;
  name: string;
  /** SHA-256 of the token, 64 lower-case hex. */
  token_hash: string;
  created_by: string;
  created_at: Int8;
  last_used_at: Int8 | null;
  /** Schema version 3: when the token stops working; null for never. */
  expires_at: Int8 | null;
}

/** Schema version 2. */
export interface WebSessionsTable {
  /** SHA-256 of the cookie value, 64 lower-case hex. */
  id_hash: string;
  account_id: Int8;
  csrf_token: string;
  created_at: Int8;
  expires_at: Int8;
}

/** Schema version 5: the dashboard's traffic history, one row per persisted interval, pruned by age and count. */
export interface TrafficSamplesTable {
  id: Generated<number | string>;
  /** End of the interval (Unix ms). */
  at: Int8;
  interval_ms: number;
  rx_bytes: Int8;
  tx_bytes: Int8;
  rx_packets: Int8;
  tx_packets: Int8;
}

/** Schema version 7: reverse-DNS delegation per account (broker/reverse-dns.ts). Lists are comma-separated. */
export interface ReverseDelegationsTable {
  id: Generated<number | string>;
  /** NULL once the account is deleted: the published names are still to be withdrawn. */
  account_id: Int8 | null;
  /** Name servers the account wants its prefix's reverse zone delegated to ('' for none). */
  servers: string;
  /** The ip6.arpa names delegated at the DNS server for this row, and the name servers they may point to there
   *  (a superset while an update is in flight or failed): what a withdrawal removes, record by record. */
  published: string;
  published_servers: string;
  /** The last DNS update's failure, NULL when the server holds what the row says. */
  error: string | null;
  updated_at: Int8;
}

/** Schema version 8: static 6in4 tunnels, one per account at most (broker/static-tunnels.ts). */
export interface StaticTunnelsTable {
  id: Generated<number | string>;
  account_id: Int8;
  /** Lower case; unique across accounts: what a dyndns2 update names. */
  hostname: string;
  /** The client's IPv4 (the 6in4 endpoint), or null while unknown. */
  endpoint: string | null;
  /** 0 or 1: route the account's delegated prefix to it too. */
  delegate_prefix: number;
  /** SHA-256 hex of the per-tunnel update key, or null when none was made. */
  update_key_hash: string | null;
  created_at: Int8;
  updated_at: Int8;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: Int8;
}

export interface Database {
  settings: SettingsTable;
  accounts: AccountsTable;
  allocations: AllocationsTable;
  prefix_claims: PrefixClaimsTable;
  tunnels: TunnelsTable;
  audit: AuditTable;
  api_tokens: ApiTokensTable;
  web_sessions: WebSessionsTable;
  schema_migrations: SchemaMigrationsTable;
  traffic_samples: TrafficSamplesTable;
  reverse_delegations: ReverseDelegationsTable;
  static_tunnels: StaticTunnelsTable;
  nodes: NodesTable;
}
