/** @module config/schema: the one validated configuration model (docs/style.md §9).
 *  A file (JSON), `serve` flags and the embedded defaults all go through `parseConfig`, which names the key and
 *  the problem on any error. Pure: no file I/O here (see config/load.ts). */

import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import { BrokerError } from '../errors.js';
import { reverseDnsSchema, zoneProblem } from './reverse-dns.js';
import { clusterSchema } from './cluster.js';
import { routesSchema } from './routes.js';
import { TUNNEL_TYPES } from '../tunnel-model.js';

const ipv4 = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), 'must be a dotted-quad IPv4 address');
const ipv6Prefix = (minLen: number, maxLen: number) =>
  z.string().refine((s) => {
    try {
      const [addr, len] = ipaddr.parseCIDR(s);
      return addr.kind() === 'ipv6' && len >= minLen && len <= maxLen;
    } catch {
      return false;
    }
  }, `must be an IPv6 prefix in CIDR form with a length from ${minLen} to ${maxLen}`);
const ipv4Prefix = (minLen: number, maxLen: number) =>
  z.string().refine((s) => {
    const m = /^(.+)\/(\d{1,2})$/.exec(s);
    return m !== null && ipaddr.IPv4.isValidFourPartDecimal(m[1]!) && Number(m[2]) >= minLen && Number(m[2]) <= maxLen;
  }, `must be an IPv4 prefix in CIDR form with a length from ${minLen} to ${maxLen}`);
/** Why an IPv4 prefix cannot be routed as a pool of unicast addresses, or null. */
function ipv4PoolProblem(cidr: string): string | null {
  if (!ipaddr.IPv4.isValidCIDR(cidr)) return null; // the key's own check has said what is wrong
  const [addr, len] = ipaddr.IPv4.parseCIDR(cidr);
  const network = ipaddr.IPv4.networkAddressFromCIDR(cidr).toString();
  if (network !== addr.toString()) return `has host bits set: the network is ${network}/${len}`;
  const range = addr.range();
  if (['unspecified', 'loopback', 'linkLocal', 'multicast', 'broadcast'].includes(range) || addr.octets[0]! >= 240)
    return `is not unicast space (${range})`;
  return null;
}
/** A specific unicast IPv6 address: an address a socket binds and offers name (not ::, multicast or link-local). */
const ipv6Unicast = z.string().refine((s) => {
  if (!ipaddr.IPv6.isValid(s) || s.includes('%')) return false;
  return !['unspecified', 'multicast', 'linkLocal', 'ipv4Mapped'].includes(ipaddr.IPv6.parse(s).range());
}, 'must be a specific unicast IPv6 address (not ::, multicast, link-local or IPv4-mapped)');
const ipv6 = z.string().refine((s) => ipaddr.IPv6.isValid(s) && !s.includes('%'), 'must be an IPv6 address');
const port = z.number().int().min(0).max(65535);
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
/** A DNS name (letters, digits, hyphens, dots; labels of 1 to 63) or an IPv4 or IPv6 address. */
const host = z
  .string()
  .refine((s) => ipaddr.isValid(s) || HOST_NAME.test(s), 'must be a host name or an IPv4 or IPv6 address');

export const LINK_MODES = ['per-account-64', 'shared-64'] as const;
export type LinkMode = (typeof LINK_MODES)[number];
/** The longest link pool shared-64 takes: a /124 holds four tunnels' /126s (fewer is no broker); per-account-64
 *  needs a /64 at most. */
const MAX_SHARED_LINK_POOL_LEN = 124;

export const AUTH_MODES = ['anonymous', 'authenticated', 'hybrid'] as const;
export const MECHANISMS = ['ANONYMOUS', 'PLAIN', 'DIGEST-MD5'] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export const configSchema = z
  .object({
    listen: z
      .object({
        /** IPv4 address for the TSP listeners (UDP and TCP). */
        address: ipv4.default('0.0.0.0'),
        /** IPv6 address for TSP listeners too (UDP and TCP, same port), for v4v6 clients, which have only IPv6;
         *  needed when tunnels.types offers v4v6. A specific address, not '::': replies, offers and the v4v6
         *  packets all come from it, whatever other IPv6 addresses the host has. null: no IPv6 listener. */
        address6: ipv6Unicast.nullable().default(null),
        port: port.default(3653),
        udp: z.boolean().default(true),
        tcp: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /** The server's IPv4 written into offers (outer endpoint). Default: the listen address, or when that is
     *  0.0.0.0, the local address the kernel routes toward each client. */
    serverIpv4: ipv4.nullable().default(null),
    /** The server's IPv6 written into v4v6 offers (their outer endpoint), and the source of their packets.
     *  Default: listen.address6 when it is a specific address, else the local address the kernel routes toward
     *  each client. */
    serverIpv6: ipv6Unicast.nullable().default(null),
    auth: z
      .object({
        mode: z.enum(AUTH_MODES).default('hybrid'),
        /** PLAIN sends the password in clear: off unless the operator opts in (docs/protocol.md §11). */
        plain: z.boolean().default(false),
        digestMd5: z.boolean().default(true),
        realm: z
          .string()
          .min(1)
          .max(64)
          .regex(/^[^"\\\r\n,]+$/, 'must not contain quotes, backslashes, commas or line breaks')
          .default('tsp-broker'),
        /** Failed authentications allowed per source IPv4 and per username in `failureWindowS` before 300 is
         *  answered without checking (rate limit). */
        maxFailures: z.number().int().min(1).default(10),
        failureWindowS: z.number().int().min(1).default(300),
        /** Accept the TSP 2.0.0 truncated-HA1 DIGEST-MD5 form from 2.0.0 clients (docs/protocol.md §5.6). It is
         *  weaker than the password, so it is off; even on, it is refused for secrets with fewer than 8 bytes
         *  before their first zero byte. Only for operators who still have 2.0.0 clients. */
        digestMd5Quirk200: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    tunnels: z
      .object({
        /** Tunnel types offered; v6anyv4 requests resolve to one of these. v4v6 (IPv4 inside IPv6, for clients
         *  with only IPv6) is offered only when listed, and needs pools.ipv4. */
        types: z.array(z.enum(TUNNEL_TYPES)).min(1).default(['v6v4', 'v6udpv4']),
        keepalive: z
          .object({
            // The bounds allow 1 s so end-to-end tests can expire tunnels quickly; the defaults are for production.
            default: z.number().int().min(1).max(3600).default(30),
            min: z.number().int().min(1).max(3600).default(10),
            max: z.number().int().min(1).max(3600).default(300),
          })
          .strict()
          .prefault({}),
        /** A tunnel with no packet from the client for this many keepalive intervals is torn down. */
        idleIntervals: z.number().int().min(2).max(100).default(4),
        /** Never tear down for idleness sooner than this (as low as 1 for tests; 60 is for real clients behind
         *  real NATs). */
        idleMinS: z.number().int().min(1).default(60),
        /** Lifetime in seconds written into offers and enforced. */
        lifetimeS: z.number().int().min(60).default(604800),
        /** One live tunnel per account: a newly accepted session replaces the old one. */
        replaceExisting: z.boolean().default(true),
        /** v6v4 requested from behind NAT: offer it to the observed address anyway (logged) or answer 303. */
        v6v4BehindNat: z.enum(['offer', 'refuse']).default('refuse'),
        /** An anonymous tunnel idle this long is ended, whatever keepalive interval it asked for. */
        anonymousIdleMaxS: z.number().int().min(1).default(120),
      })
      .strict()
      .prefault({}),
    pools: z
      .object({
        /** Link addresses. null: a ULA /48 generated on first start and kept in the store. Up to /64 (one /64
         *  per owner needs it); shared-64 also takes a pool inside a single /64, down to a /124 (four tunnels). */
        link: ipv6Prefix(16, MAX_SHARED_LINK_POOL_LEN).nullable().default(null),
        /** 'per-account-64': a /64 per tunnel owner from the link pool, server ::1 and client ::2 in it.
         *  'shared-64': a /126 per tunnel owner, so many owners share each /64 of the pool: server ::1 and client
         *  ::2 of the /126, each a /128 of its own (broker/pools.ts linkLeaseLength). */
        linkMode: z.enum(LINK_MODES).default('per-account-64'),
        /** Delegated prefixes (router mode). null: a ULA /40 generated on first start and kept. */
        delegation: ipv6Prefix(16, 64).nullable().default(null),
        prefixLen: z
          .object({
            default: z.number().int().min(16).max(64).default(56),
            min: z.number().int().min(16).max(64).default(48),
            max: z.number().int().min(16).max(64).default(64),
          })
          .strict()
          .prefault({}),
        /** IPv4 addresses for v4v6 tunnels (docs/v4v6.md): a /30 per tunnel owner, the server's inner address
         *  its .1 and the client's its .2; routed to the TUN only while v4v6 is offered. NAT44 toward the IPv4
         *  internet is the operator's (docs/v4v6.md). */
        ipv4: ipv4Prefix(8, 30).nullable().default(null),
        /** Resolver written into offers (`<client><dns_server>`). null: the server's tunnel address. */
        dnsServer: ipv6.nullable().default(null),
        /** Share of the link pool kept for accounts: anonymous tunnels get 301 once they hold the rest. */
        accountReserve: z.number().min(0).max(1).default(0.25),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Sessions that have not reached an accepted tunnel, kept at once (memory bound). */
        halfOpenSessions: z.number().int().min(1).default(10000),
        /** Half-open sessions per source IPv4. */
        halfOpenPerSource: z.number().int().min(1).default(64),
        /** Any state before the accept expires after this long. */
        negotiationTimeoutS: z.number().int().min(1).max(600).default(30),
        /** Open TCP connections per source IPv4. */
        tcpPerSource: z.number().int().min(1).default(32),
        /** Open TCP connections in all (each is a file descriptor). */
        tcpConnections: z.number().int().min(1).default(1024),
        /** Anonymous tunnels (offered or live) per source IPv4, and per /24: enough for a NAT with several
         *  users, too few for one host to empty the pool. */
        anonymousPerSource: z.number().int().min(0).default(8),
        anonymousPerPrefix24: z.number().int().min(0).default(32),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
        /** SQLite database file. */
        path: z.string().min(1).default('./data/tsp-broker.db'),
        /** PostgreSQL connection string (driver postgres). */
        url: z.string().nullable().default(null),
        /** SQLite: start even when the database file is readable or writable by group or others. Off: the file
         *  holds password-equivalent DIGEST-MD5 secrets, so such a file is refused with the chmod that fixes it. */
        allowGroupReadable: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** How long the store keeps history (src/broker/retention.ts prunes hourly, in batches). 0 keeps it forever.
     *  Expired web sessions are always deleted. */
    retention: z
      .object({
        /** Ended tunnels (with their counters and end reasons) go this many days after they ended. */
        endedTunnelsDays: z.number().int().min(0).max(36500).default(90),
        /** Audit events (logins, account changes, kills) go this many days after they happened. */
        auditDays: z.number().int().min(0).max(36500).default(365),
      })
      .strict()
      .prefault({}),
    dataplane: z
      .object({
        /** 'native': the C++ addon with a TUN device (needs root). 'ebpf': the kernel fast path (TC programs,
         *  built where clang and libbpf-dev are) in front of the addon. 'memory': control only, no packets
         *  (tests and demos without root). 'auto': ebpf, else native, else memory, logging which and why. */
        driver: z.enum(['ebpf', 'native', 'memory', 'auto']).default('auto'),
        tun: z
          .string()
          .min(1)
          .max(15)
          .regex(/^[A-Za-z0-9_.-]+$/, 'must be a valid interface name')
          .default('tsp0'),
        mtu: z.number().int().min(1280).max(65535).default(1280),
        /** Pin the forwarding threads to this CPU (a core given to the data plane). null: the scheduler's
         *  choice. */
        cpu: z.number().int().min(0).max(1023).nullable().default(null),
        /** Microseconds the forwarding threads busy-poll after a receive finds nothing, before sleeping. Spares
         *  senders a cross-CPU wakeup per batch under load, but burns CPU when traffic is sparse: only with
         *  `cpu` set to a core of its own. 0: sleep at once. */
        busyPollUs: z.number().int().min(0).max(1000).default(0),
        /** How decapsulated packets reach the TUN: one io_uring submission per batch (falls back by itself
         *  where io_uring is unavailable) or one write() per packet. */
        tunWrites: z.enum(['io_uring', 'write']).default('io_uring'),
        /** Control datagrams queued for the control plane at most; beyond, dropped and counted
         *  (control_queue_full). Bounds what a flood of TSP datagrams can make the addon hold. */
        controlQueueCap: z.number().int().min(1).max(1048576).default(1024),
      })
      .strict()
      .prefault({}),
    admin: z
      .object({
        enabled: z.boolean().default(true),
        address: z.string().default('127.0.0.1'),
        port: port.default(8080),
        tls: z.object({ cert: z.string(), key: z.string() }).strict().nullable().default(null),
        /** The TSP server address account holders should put in their client (`server=` on /me): a host name or
         *  IP address as the clients reach it. null: serverIpv4, else the listen address unless it is 0.0.0.0;
         *  with none of them, /me says the operator has not configured it. */
        publicTspHost: host.nullable().default(null),
      })
      .strict()
      .prefault({}),
    /** A second HTTP listener that serves only the account holders' pages (/login, /logout, /me, /me/password,
     *  the assets and the favicon): never admin pages, /api/v1 or /metrics. The admin server stays on loopback;
     *  this one can be exposed to tunnel holders. */
    selfService: z
      .object({
        enabled: z.boolean().default(false),
        address: z.string().default('127.0.0.1'),
        port: port.default(8081),
        tls: z.object({ cert: z.string(), key: z.string() }).strict().nullable().default(null),
      })
      .strict()
      .prefault({}),
    /** Static 6in4 tunnels and their dyndns2 update endpoint, /nic/update (broker/static-tunnels.ts,
     *  admin/nic-update.ts). */
    staticTunnels: z
      .object({
        /** /nic/update requests answered per source address and minute; beyond, `abuse` until the minute ends. */
        updatesPerMinute: z.number().int().min(1).max(10000).default(20),
        /** Changes per tunnel and hour by its account holder: endpoint changes through /nic/update (beyond:
         *  `abuse`) or /me in the web UI or API, and new update keys there (beyond: 429). An operator's are
         *  not counted. */
        changesPerHour: z.number().int().min(1).max(10000).default(30),
        /** An update's `myip` must be the request's own source IPv4 (else `badip`), so nobody points protocol
         *  41 at an address they do not use. false: any public address is taken (a client that updates from
         *  another address than its tunnel's, e.g. a separate management network). */
        endpointFromSource: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** 'human' (time, level, message, key=value), 'json' (one object per line, ISO time), or 'auto': human
         *  when stdout is a terminal, JSON otherwise (src/cli/logger.ts). */
        format: z.enum(['auto', 'human', 'json']).default('auto'),
      })
      .strict()
      .prefault({}),
    /** Reverse-DNS delegation of router-mode prefixes by RFC 2136 update (docs/reverse-dns.md). null: off,
     *  and `<router><dns_server>` in requests is ignored. */
    reverseDns: reverseDnsSchema.nullable().default(null),
    /** This broker as a node of several on one PostgreSQL store (docs/cluster.md); unused with SQLite. */
    cluster: clusterSchema.prefault({}),
    /** Route export for a node of a cluster (config/routes.ts, docs/cluster.md). */
    routes: routesSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (c.tunnels.keepalive.min > c.tunnels.keepalive.max)
      issue(['tunnels', 'keepalive', 'min'], 'must be ≤ tunnels.keepalive.max');
    const ka = c.tunnels.keepalive;
    if (ka.default < ka.min || ka.default > ka.max)
      issue(['tunnels', 'keepalive', 'default'], 'must lie within min..max');
    const pl = c.pools.prefixLen;
    if (pl.min > pl.max) issue(['pools', 'prefixLen', 'min'], 'must be ≤ pools.prefixLen.max');
    if (pl.default < pl.min || pl.default > pl.max)
      issue(['pools', 'prefixLen', 'default'], 'must lie within min..max');
    if (c.pools.link && c.pools.linkMode === 'per-account-64' && ipaddr.parseCIDR(c.pools.link)[1] > 64)
      issue(
        ['pools', 'link'],
        `a /${ipaddr.parseCIDR(c.pools.link)[1]} holds no /64 for pools.linkMode 'per-account-64' (longer than /64 needs 'shared-64')`,
      );
    if (c.pools.delegation) {
      const len = ipaddr.parseCIDR(c.pools.delegation)[1];
      if (len > pl.min) issue(['pools', 'delegation'], `a /${len} cannot hold a /${pl.min} (pools.prefixLen.min)`);
    }
    if (c.reverseDns && c.pools.delegation) {
      const why = zoneProblem(c.reverseDns.zone, c.pools.delegation, pl.min);
      if (why) issue(['reverseDns', 'zone'], why);
    }
    if (c.tunnels.types.includes('v4v6') && !c.pools.ipv4)
      issue(['pools', 'ipv4'], "is needed when tunnels.types offers 'v4v6' (the IPv4 addresses inside v4v6 tunnels)");
    if (c.tunnels.types.includes('v4v6') && !c.listen.address6)
      issue(
        ['listen', 'address6'],
        "is needed when tunnels.types offers 'v4v6' (its clients reach the broker over IPv6)",
      );
    const poolProblem = c.pools.ipv4 ? ipv4PoolProblem(c.pools.ipv4) : null;
    if (poolProblem) issue(['pools', 'ipv4'], poolProblem);
    if (c.auth.mode !== 'anonymous' && !c.auth.plain && !c.auth.digestMd5)
      issue(['auth'], `mode '${c.auth.mode}' needs auth.plain or auth.digestMd5 enabled`);
    const ss = c.selfService;
    if (ss.enabled && c.admin.enabled && ss.port !== 0 && ss.port === c.admin.port && ss.address === c.admin.address)
      issue(['selfService', 'port'], 'must differ from admin.port on the same address');
    // the routes point at the TUN device, which only the native and ebpf drivers have ('auto' is checked at start)
    if (c.routes.table !== null && c.dataplane.driver === 'memory')
      issue(['routes', 'table'], "needs a data plane with a TUN device: dataplane.driver 'native', 'ebpf' or 'auto'");
    if (c.store.driver === 'postgres' && !c.store.url)
      issue(['store', 'url'], "is required when store.driver is 'postgres'");
  });

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Validates raw input (parsed JSON merged with flags). Throws BrokerError CFG_INVALID whose message lists
 *  every problem as `key.path: problem`. */
export function parseConfig(raw: unknown): Config {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.length ? i.path.join('.') : '(top level)';
    if (i.code === 'unrecognized_keys') return `${[...i.path, ...i.keys].join('.')}: unknown key`;
    return `${key}: ${i.message}`;
  });
  throw new BrokerError('CFG_INVALID', lines.join('\n'));
}

/** The embedded defaults, as `tsp-broker config defaults` prints them. */
export function defaultConfig(): Config {
  return parseConfig({});
}

/** Mechanisms advertised in CAPABILITY for a configuration, strongest first. */
export function enabledMechanisms(c: Config): Mechanism[] {
  const m: Mechanism[] = [];
  if (c.auth.mode !== 'anonymous') {
    if (c.auth.digestMd5) m.push('DIGEST-MD5');
    if (c.auth.plain) m.push('PLAIN');
  }
  if (c.auth.mode !== 'authenticated') m.push('ANONYMOUS');
  return m;
}
