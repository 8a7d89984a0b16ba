/** @module store/types: persistence behind narrow interfaces, one per concern (docs/design.md "State and
 *  restart"), and Store, all of them at once. Implemented over Kysely: SQLite (src/store/sqlite.ts, default) and
 *  PostgreSQL (src/store/open.ts) with the same query code (src/store/kysely/, src/store/allocator.ts).
 *  All times are Unix milliseconds. Every method that changes state commits before it resolves (inside a batch:
 *  when the batch does), so a caller may acknowledge on the wire once the promise resolves.
 *  Errors: BrokerError with STORE_NOT_FOUND, STORE_CONFLICT (unique username...), POOL_EXHAUSTED, STORE_FAILED. */

import type { TunnelType } from '../tunnel-model.js';
import type { ReverseDnsStore } from './reverse-types.js';
import type { NodeStore } from './node-types.js';
import type { StaticTunnelStore } from './static-types.js';
import type { TrafficStore } from './traffic-types.js';
import type { AllocationStore, LeaseReservation } from './allocation-types.js';

export { REVERSE_PENDING, type ReverseDelegation, type ReverseDnsStore, type ReverseOutcome } from './reverse-types.js';
export type { StaticTunnel, StaticTunnelStore } from './static-types.js';
export type { ClusterMessage, NodeRecord, NodeStore } from './node-types.js';
export type { TrafficBucket, TrafficSampleRow, TrafficStore } from './traffic-types.js';
export type {
  AllocateRequest,
  Allocation,
  AllocationStore,
  LeaseReservation,
  PoolName,
  PoolUsage,
} from './allocation-types.js';

export type Role = 'admin' | 'user';

/** Per-account policy an operator can set. Absent fields mean "the broker's configured default". */
export interface AccountLimits {
  tunnelTypes?: TunnelType[];
  minPrefixLen?: number;
  maxPrefixLen?: number;
}

export interface Account {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  limits: AccountLimits;
  /** No DIGEST-MD5 secret is stored (schema version 4): the account signs in to the web UI and API only, and
   *  a DIGEST-MD5 TSP login fails as for an unknown user. */
  webOnly: boolean;
  createdAt: number;
  updatedAt: number;
}

/** What authentication needs; never leaves the broker. */
export interface AccountSecrets extends Account {
  /** argon2id PHC string of the password (PLAIN and web login). */
  passwordHash: string;
  /** DIGEST-MD5 X = MD5(username:realm:password), 32 lower-case hex (password-equivalent: protect it); null
   *  for a web-only account. */
  digestHa1: string | null;
  /** The realm digestHa1 was computed for; null with digestHa1. */
  digestRealm: string | null;
}

/** What a password becomes in the store. digestHa1 and digestRealm are both null (web-only) or both set. */
export interface PasswordSecrets {
  passwordHash: string;
  digestHa1: string | null;
  digestRealm: string | null;
}

export interface NewAccount extends PasswordSecrets {
  username: string;
  role: Role;
  limits?: AccountLimits;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export type TunnelState = 'offered' | 'established' | 'ended';

export type TunnelTransport = 'udp' | 'tcp' | 'static';

/** Why a tunnel ended: shown to operators and kept in the tunnels table. */
export type EndReason =
  | 'replaced' // a new session of the same account
  | 'idle' // no packets from the client for the idle limit
  | 'lifetime' // the offered lifetime passed
  | 'admin' // killed by an operator
  | 'deleted' // the client sent delete
  | 'not_accepted' // offer never accepted (timeout, reject or TCP close)
  | 'shutdown' // broker stopped and could not keep it
  | 'account_disabled' // the account was disabled
  | 'account_deleted'; // the account was deleted

export interface TunnelRecord {
  id: number;
  accountId: number | null;
  /** Joined from accounts; null for anonymous tunnels. */
  username: string | null;
  leaseId: string | null;
  type: TunnelType;
  /** How the tunnel was set up: a TSP session over UDP or TCP, or 'static' (a static 6in4 tunnel, always v6v4:
   *  no session, no keepalive, no idle or lifetime end; broker/static-tunnels.ts). */
  transport: TunnelTransport;
  clientIpv4: string;
  /** 0 for v6v4 (tunnel-model.ts clientPortFor). */
  clientPort: number;
  serverIpv4: string;
  serverIpv6: string;
  clientIpv6: string;
  /** Delegated prefix (router mode) as canonical text, and its length. */
  prefix: string | null;
  prefixLen: number | null;
  keepaliveInterval: number;
  lifetimeS: number;
  state: TunnelState;
  createdAt: number;
  establishedAt: number | null;
  endedAt: number | null;
  endReason: EndReason | null;
  lastSeenAt: number | null;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** The node that carries (or carried) it (cluster/node.ts); null for rows from before nodes were kept,
   *  absent where not read from the store. */
  node?: string | null;
}

export type NewTunnel = Omit<
  TunnelRecord,
  | 'id'
  | 'username'
  | 'node'
  | 'createdAt'
  | 'state'
  | 'establishedAt'
  | 'endedAt'
  | 'endReason'
  | 'lastSeenAt'
  | 'rxPackets'
  | 'rxBytes'
  | 'txPackets'
  | 'txBytes'
>;

export interface TunnelFilter {
  state?: TunnelState | 'live'; // 'live' = offered or established
  accountId?: number;
  type?: TunnelType;
  /** Case-insensitive substring of the username, client IPv4, client IPv6 or delegated prefix (% and _ are
   *  literal). */
  search?: string;
  /** Default 'started' (created_at); ties by id. */
  sort?: TunnelSort;
  /** Default 'desc' (newest, last username, most traffic first). */
  order?: 'asc' | 'desc';
  limit?: number; // default 100, max 1000
  offset?: number;
}

/** 'account' sorts anonymous tunnels as an empty username; 'traffic' is rxBytes + txBytes as stored. */
export type TunnelSort = 'started' | 'account' | 'type' | 'traffic';

/** Audit filters; all given ones must hold. */
export interface AuditFilter {
  offset?: number;
  limit?: number;
  /** Exact action, e.g. 'account.create'. */
  action?: string;
  /** Exact actor, e.g. 'admin:root'. */
  actor?: string;
  /** Case-insensitive substring of the actor. */
  actorContains?: string;
  /** Case-insensitive substring of the target. */
  target?: string;
  /** at >= from (Unix ms). */
  from?: number;
  /** at < to (Unix ms). */
  to?: number;
}

export interface CounterUpdate {
  id: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  lastSeenAt: number | null;
}

export interface AuditEvent {
  id: number;
  at: number;
  /** Who acted: 'cli', 'system', 'admin:<username>', 'token:<name>', 'user:<username>'. */
  actor: string;
  /** Dotted verb, e.g. 'account.create', 'tunnel.kill', 'auth.fail'. */
  action: string;
  target: string | null;
  detail: Record<string, unknown> | null;
}

/** An admin API token. The token itself is shown once at creation and never stored: only its SHA-256. */
export interface ApiToken {
  id: number;
  /** Unique, chosen by the admin who created it; the audit actor is `token:<name>`. */
  name: string;
  createdBy: string;
  createdAt: number;
  /** Written at most once a minute per token (admin/tokens.ts), so it may lag by that much. */
  lastUsedAt: number | null;
  /** After this the token is refused; null: it never expires (schema version 3). */
  expiresAt: number | null;
}

/** A signed-in web UI session, keyed by the SHA-256 of the cookie value (a leaked database gives no session). */
export interface WebSession {
  accountId: number;
  /** Random per session; forms and cookie-authenticated API writes must echo it (CSRF). */
  csrfToken: string;
  createdAt: number;
  expiresAt: number;
}

// ---- the store, one narrow interface per concern (docs/style.md §4). A caller should ask for the narrowest
// one that covers what it does; Store is all of them, for the composition root and for callers not yet narrowed.

/** Runs several store calls as one transaction. */
export interface Transactional {
  /** Runs the store calls fn makes on `tx` (awaited one after another) in one transaction: they commit
   *  together or not at all. `tx` is a store whose calls run in that transaction (but releaseOtherChunks, a
   *  start-up call), and which refuses calls once the batch has settled. A call on this store instead bypasses
   *  the batch: a write is a transaction of its own (on SQLite it waits behind the batch forever), a read sees
   *  the last commit; tests run with TSP_STORE_CHECKS=1, which makes such a call throw. fn may run more than
   *  once (a transient error or a lost race retries the whole batch), so it must do nothing but store calls
   *  and computing from their results. A batch on `tx` joins it. */
  batch<T>(fn: (tx: Store) => Promise<T>, opts?: BatchOptions): Promise<T>;
}

/** Store.writeStats(): write transactions and what carried them (SQLite). */
export interface WriteStats {
  /** Write transactions asked for. */
  writes: number;
  /** Database commits that carried them (SQLite groups the writes waiting at once). */
  commits: number;
  largestGroup: number;
  /** Writes acknowledged at their commit, before the sync (BatchOptions.provisional). */
  provisional?: number;
  /** The WAL checkpoints of a SQLite file (store/checkpointer.ts CheckpointStats). */
  checkpoints?: {
    passes: number;
    held: number;
    errors: number;
    walPages: number;
    copiedPages: number;
    failed: boolean;
  };
}

/** How a batch's commit is acknowledged. */
export interface BatchOptions {
  /** True lets the promise resolve at its commit, before the commit is on disk. The next durable commit makes
   *  it durable too (SQLite's WAL is written in order), so a crash can lose it only together with every later
   *  write. For writes nothing depends on until a later durable write does: an anonymous TSP offer, which the
   *  accept's sync makes durable before the accept is answered. SQLite only (the broker and its database file
   *  fail together); PostgreSQL ignores it. Inside an outer batch the outer one decides. */
  provisional?: boolean;
}

/** Small key/value facts the broker must keep across restarts (the generated ULA pools). */
export interface SettingsStore {
  getSetting(key: string): Promise<string | undefined>;
  /** Sets key only if absent; returns the value now stored (so two starters agree). */
  setSettingIfAbsent(key: string, value: string): Promise<string>;
}

/** Accounts and their secrets: who may sign in, with which role and limits. */
export interface AccountStore {
  createAccount(a: NewAccount): Promise<Account>; // STORE_CONFLICT if the username exists
  getAccount(id: number): Promise<Account | undefined>;
  getAccountSecrets(username: string): Promise<AccountSecrets | undefined>;
  listAccounts(q: { search?: string; offset?: number; limit?: number }): Promise<Page<Account>>;
  /** Replaces the stored secrets; null DIGEST-MD5 fields make (or keep) the account web-only. */
  setPassword(id: number, p: PasswordSecrets): Promise<void>;
  setDisabled(id: number, disabled: boolean): Promise<void>;
  setLimits(id: number, limits: AccountLimits): Promise<void>;
  /** Deletes the account and releases its allocations; its ended tunnels stay with accountId null. */
  deleteAccount(id: number): Promise<void>;
}

/** Tunnel rows through offered, established and ended, with their counters. */
export interface TunnelStore {
  /** State 'offered'. A v6v4 tunnel's clientPort is stored as 0 (tunnel-model.ts clientPortFor).
   *  `established`: the row starts established at that time instead (an offer kept in memory until its
   *  accept); `reservation`: the lease row of t.leaseId is written first, from the reservation
   *  (STORE_CONFLICT when its slot turned out taken). */
  createTunnel(
    t: NewTunnel,
    at: number,
    opts?: { established?: number; reservation?: LeaseReservation },
  ): Promise<TunnelRecord>;
  establishTunnel(id: number, at: number): Promise<void>;
  /** Idempotent on ended tunnels. `counters`: the tunnel's final counters (as updateCounters), in the same
   *  statement. */
  endTunnel(id: number, reason: EndReason, at: number, counters?: Omit<CounterUpdate, 'id'>): Promise<void>;
  updateCounters(updates: CounterUpdate[]): Promise<void>;
  getTunnel(id: number): Promise<TunnelRecord | undefined>;
  listTunnels(f: TunnelFilter): Promise<Page<TunnelRecord>>;
  /** The offered and established tunnels by id: all in one read, or with `page` at most `limit` of those
   *  after id `afterId` (a restart restores them a page at a time, so each page's rows are garbage before the
   *  next is read; a page costs about one read of the live set's index entries, with no count). With
   *  `node`, only the tunnels that node carries (a cluster node's restart). */
  liveTunnels(page?: { afterId: number; limit: number; node?: string }): Promise<TunnelRecord[]>;
  /** A live static tunnel's new client IPv4 (its 6in4 endpoint moved). STORE_NOT_FOUND on an unknown id. */
  moveTunnelEndpoint(id: number, clientIpv4: string): Promise<void>;
  /** Retention: deletes at most `limit` tunnels that ended before `before` (oldest first, one transaction) and
   *  releases any block still leased to them; never a live tunnel. Returns how many rows went. */
  pruneEndedTunnels(before: number, limit: number): Promise<number>;
}

/** The audit trail: who did what to which target, and when. */
export interface AuditStore {
  addAudit(e: Omit<AuditEvent, 'id'>): Promise<void>;
  listAudit(q: AuditFilter): Promise<Page<AuditEvent>>;
  /** Retention: deletes at most `limit` events older than `before`, oldest first; returns how many. */
  pruneAudit(before: number, limit: number): Promise<number>;
}

/** The admin front end's credentials: API tokens and signed-in web UI sessions (schema version 2). */
export interface WebStore {
  createApiToken(
    t: { name: string; tokenHash: string; createdBy: string; expiresAt?: number | null },
    at: number,
  ): Promise<ApiToken>; // STORE_CONFLICT on a used name
  listApiTokens(): Promise<ApiToken[]>; // by name
  findApiToken(tokenHash: string): Promise<ApiToken | undefined>;
  touchApiToken(id: number, at: number): Promise<void>;
  /** False when there was no token of that name. */
  deleteApiToken(name: string): Promise<boolean>;

  /** Web UI sessions are deleted with their account. */
  createWebSession(idHash: string, s: WebSession): Promise<void>;
  /** The session if it exists and has not expired at `now`. */
  getWebSession(idHash: string, now: number): Promise<WebSession | undefined>;
  deleteWebSession(idHash: string): Promise<void>;
  /** Removes sessions expired at `now` (at most `limit` of them, oldest first, when given); returns how many. */
  deleteExpiredWebSessions(now: number, limit?: number): Promise<number>;
}

/** Every concern at once, on one database: what openStore() returns. */
export interface Store
  extends
    Transactional,
    SettingsStore,
    AccountStore,
    AllocationStore,
    TunnelStore,
    StaticTunnelStore,
    NodeStore,
    AuditStore,
    WebStore,
    TrafficStore,
    ReverseDnsStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Idempotent. Pending calls may fail with STORE_FAILED. */
  close(): Promise<void>;
  /** Write transactions asked for and the commits that carried them (SQLite groups them), when counted. */
  writeStats?(): WriteStats | undefined;
}
