/** @module cli/start-broker: the composition root. Assembles a running broker from a configuration: store,
 *  pools, data plane, broker policy, UDP and TCP listeners, and the admin server. `tsp-broker serve` and the
 *  tests start brokers through this one function. It lives in cli/ because it wires broker/ and admin/
 *  together: broker/ itself never imports admin/ (docs/design.md dependency direction). */

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { BrokerError, isBrokerError } from '../errors.js';
import type { DataPlane } from '../dataplane/types.js';
import { MemoryDataPlane } from '../dataplane/memory.js';
import type { NativeDataPlaneOptions } from '../dataplane/native.js';
import type { Store } from '../store/types.js';
import { openStore } from '../store/open.js';
import { UdpControl } from '../transport/udp.js';
import { TcpControl } from '../transport/tcp.js';
import { localAddressToward } from '../transport/local-address.js';
import { controlChannels, Udp6Channel } from '../transport/udp6.js';
import type { SessionCounts } from '../transport/session-host.js';
import { Broker } from '../broker/broker.js';
import { AccountService } from '../broker/accounts.js';
import { resolvePools, type Pools } from '../broker/pools.js';
import { zoneProblem } from '../config/reverse-dns.js';
import { startRetention } from '../broker/retention.js';
import { startAdminServer } from '../admin/server.js';
import { addressesOf, isClustered, nodeIdOf, startCluster, type RunningCluster } from '../cluster/cluster.js';
import { startRouteExport } from '../cluster/routes-start.js';
import { RESTORE_COLLECT_MIN_TUNNELS, collectGarbage } from './heap.js';

export interface RunningBroker {
  config: Config;
  store: Store;
  dataplane: DataPlane;
  broker: Broker;
  accounts: AccountService;
  pools: Pools;
  udp: UdpControl | undefined;
  tcp: TcpControl | undefined;
  /** Ports actually bound (differ from the configuration when it asked for port 0). */
  ports: { udp: number; tcp: number };
  /** The admin HTTP server (REST API, web UI, /metrics) when config.admin.enabled; `port` is the bound one. */
  admin?: { port: number };
  /** The self-service listener (account holders' pages only) when config.selfService.enabled. */
  selfService?: { port: number };
  sessionCounts(): SessionCounts;
  /** This node of a cluster, when the store is shared (PostgreSQL). */
  cluster?: RunningCluster;
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  clock?: Clock;
  /** Use this data plane instead of the configured one (tests). */
  dataplane?: DataPlane;
  /** Use this store instead of opening the configured one (tests); closed with the broker. */
  store?: Store;
  newNonce?: () => string;
}

/** The native data plane's options for a configuration (exported for tests).
 *
 *  Host setup is one route per pool to the TUN and no address on it. Every tunnel has a server address of its
 *  own (<link block>::1: of a /64 in per-account-64 mode, of a /126 in shared-64), one per owner, so putting
 *  them on the TUN would mean an address per tunnel in the kernel: the addon answers the echo requests to them in place instead (the
 *  clients' keepalives, docs/protocol.md §9.1), and anything else sent to them ends as no_route. The host's
 *  ICMPv6 errors toward clients (hop limit, packet too big) take a source address from its other interfaces.
 *
 *  Protocol-41 packets leave from serverIpv4 when it is known (configured, or a specific listen address), so
 *  they come from the address the offers name; otherwise the kernel picks per route, which is also how offers
 *  pick it then (localAddressToward). */
export function nativeOptions(config: Config, pools: Pools): NativeDataPlaneOptions {
  const dp = config.dataplane;
  const serverIpv4 = config.serverIpv4 ?? (config.listen.address !== '0.0.0.0' ? config.listen.address : undefined);
  const v4v6 = config.tunnels.types.includes('v4v6');
  return {
    tunName: dp.tun,
    mtu: dp.mtu,
    listenAddress: config.listen.address,
    port: config.listen.port,
    // v4v6: the IPv4 pool is routed to the TUN too, and the addon opens its IPv4-in-IPv6 socket
    routes:
      v4v6 && config.pools.ipv4 ? [pools.link, pools.delegation, config.pools.ipv4] : [pools.link, pools.delegation],
    ...(serverIpv4 !== undefined ? { serverIpv4 } : {}),
    ...(v4v6 ? { v4v6: { serverIpv6: config.serverIpv6 ?? config.listen.address6! } } : {}),
    ...(dp.cpu !== null ? { cpu: dp.cpu } : {}),
    spinMicros: dp.busyPollUs,
    tunWrites: dp.tunWrites,
    controlQueueCap: dp.controlQueueCap,
  };
}

async function openDataPlane(config: Config, pools: Pools, log: Logger, clock: Clock): Promise<DataPlane> {
  const memory = async () => {
    const m = new MemoryDataPlane({ listenAddress: config.listen.address, port: config.listen.port, clock });
    await m.start();
    return m;
  };
  const driver = config.dataplane.driver;
  if (driver === 'memory') return memory();
  // loaded on demand: the addon needs a build and root; the control plane runs without it
  const start = async (module: string, name: string) => {
    const mod = (await import(module)) as Record<string, new (o: NativeDataPlaneOptions) => DataPlane>;
    const dp = new mod[name]!(nativeOptions(config, pools));
    await dp.start();
    return dp;
  };
  const reason = (err: unknown) => (isBrokerError(err) ? err.message : String(err));
  let ebpfWhy: string | undefined;
  if (driver === 'ebpf' || driver === 'auto') {
    try {
      const dp = await start('../dataplane/ebpf.js', 'EbpfDataPlane');
      if (driver === 'auto') log.info('data plane: ebpf (the kernel fast path, the native addon behind it)');
      return dp;
    } catch (err) {
      if (driver === 'ebpf') throw err;
      ebpfWhy = reason(err);
    }
  }
  try {
    const dp = await start('../dataplane/native.js', 'NativeDataPlane');
    if (driver === 'auto') log.info({ ebpf: ebpfWhy }, 'data plane: native (the eBPF fast path is unavailable)');
    return dp;
  } catch (err) {
    if (driver === 'native') throw err;
    log.warn(
      { reason: reason(err), ebpf: ebpfWhy },
      'native data plane unavailable: running the control plane only (MemoryDataPlane); tunnels negotiate and keepalives are answered, but nothing reaches or comes from the internet',
    );
    return memory();
  }
}

/** config.reverseDns.zone against a delegation pool generated at first start (a configured pool is checked
 *  with the rest of the file). */
function checkReverseZone(config: Config, pools: Pools): void {
  if (!config.reverseDns || config.pools.delegation) return;
  const why = zoneProblem(config.reverseDns.zone, pools.delegation, config.pools.prefixLen.min);
  if (why) throw new BrokerError('CFG_INVALID', `reverseDns.zone: ${why}`);
}

export async function startBroker(config: Config, opts: StartOptions): Promise<RunningBroker> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log;
  // several brokers on one PostgreSQL are nodes of a cluster (docs/cluster.md); SQLite has one broker
  const clustered = isClustered(config);
  const store = opts.store ?? (await openStore(config.store, { nodeId: nodeIdOf(config) }));
  const closers: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((err) => log.error({ err }, 'error while stopping'));
  };
  try {
    const pools = await resolvePools(config, store);
    checkReverseZone(config, pools);
    // after a change of pools.linkMode: the node's empty chunks of the other mode's leases go back to the pool
    const otherChunks = await store.releaseOtherChunks(pools.link, pools.linkLeaseLen);
    if (otherChunks > 0)
      log.info({ pool: pools.link, chunks: otherChunks }, 'gave back link chunks cut for the other pools.linkMode');
    let dataplane = opts.dataplane;
    if (!dataplane) dataplane = await openDataPlane(config, pools, log, clock);
    else await dataplane.start();
    const dp = dataplane;
    closers.push(() => dp.close());
    const broker = new Broker({
      config,
      store,
      dataplane: dp,
      clock,
      log,
      pools,
      localAddressToward,
      ...(opts.newNonce ? { newNonce: opts.newNonce } : {}),
      ...(clustered ? { node: store.nodeId, nodeAddresses: addressesOf(config) } : {}),
    });
    await broker.start();
    closers.push(() => broker.close());
    // before the listeners: the first session already knows whether to redirect
    const cluster = clustered ? await startCluster({ config, store, broker, clock, log }) : undefined;
    if (cluster) closers.push(() => cluster.close());
    if (broker.tunnels.size >= RESTORE_COLLECT_MIN_TUNNELS) collectGarbage(); // the restore's rows (cli/heap.ts)
    // route export (docs/cluster.md): after the restore; stops before the broker, so routes go first
    const routeExport = await startRouteExport(config, dp, broker.tunnels, pools.linkLeaseLen, log, closers);
    // old ended tunnels, audit events, expired web sessions: pruned now and hourly; stops before the store closes
    const retention = startRetention(store, config.retention, clock, log);
    closers.push(() => retention.stop());
    const { udp, tcp } = await startTransports(config, dp, broker, clock, closers);
    const ports = { udp: config.listen.udp ? dp.udpPort : 0, tcp: tcp?.port ?? 0 };
    logListening(log, config, dp, ports, pools);
    let closed = false;
    const accounts = new AccountService(store, config.auth.realm, clock, broker);
    const sessionCounts = () => countSessions(udp, tcp);
    let admin: { port: number } | undefined;
    let selfService: { port: number } | undefined;
    if (config.admin.enabled || config.selfService.enabled) {
      const deps = { config, store, broker, accounts, pools, ports, sessionCounts, clock, log, routeExport };
      const server = await startAdminServer(deps);
      closers.push(() => server.close());
      if (config.admin.enabled) admin = { port: server.port };
      if (server.selfServicePort !== null) selfService = { port: server.selfServicePort };
    }
    return {
      config,
      store,
      dataplane: dp,
      broker,
      accounts,
      pools,
      udp,
      tcp,
      ports,
      ...(admin ? { admin } : {}),
      ...(selfService ? { selfService } : {}),
      ...(cluster ? { cluster } : {}),
      sessionCounts,
      close: async () => {
        if (closed) return;
        closed = true;
        const writes = store.writeStats?.();
        await closeAll();
        log.info(writes ? { store: writes } : {}, 'tsp-broker stopped');
      },
    };
  } catch (err) {
    await closeAll();
    throw isBrokerError(err)
      ? err
      : new BrokerError('INTERNAL', `start failed: ${(err as Error).message}`, { cause: err });
  }
}

/** The start's last word: what listens where, with which data plane and pools (tests wait for its message). */
function logListening(log: Logger, config: Config, dp: DataPlane, ports: { udp: number; tcp: number }, pools: Pools) {
  log.info(
    {
      udp: ports.udp || null,
      tcp: ports.tcp || null,
      address: config.listen.address,
      ...(ipv6ListenAddress(config) !== null ? { address6: ipv6ListenAddress(config) } : {}),
      dataplane: dp.kind,
      auth: config.auth.mode,
      pools,
    },
    'tsp-broker listening',
  );
}

/** The TSP listeners: UDP on the data plane's socket, TCP on the same port. */
/** The IPv6 address the TSP listeners bind as well (listen.address6; config validation asks for one when v4v6
 *  is offered), or null for none. */
export function ipv6ListenAddress(config: Config): string | null {
  return config.listen.address6;
}

async function startTransports(
  config: Config,
  dp: DataPlane,
  broker: Broker,
  clock: Clock,
  closers: (() => Promise<void>)[],
): Promise<{ udp: UdpControl | undefined; tcp: TcpControl | undefined }> {
  const limits = config.limits;
  const address6 = ipv6ListenAddress(config);
  // the same port for every listener (port 0 in tests: whatever the data plane's UDP socket got)
  const port = config.listen.port === 0 && config.listen.udp ? dp.udpPort : config.listen.port;
  let udp: UdpControl | undefined;
  if (config.listen.udp) {
    let udp6: Udp6Channel | undefined;
    if (address6 !== null) {
      const u6 = (udp6 = new Udp6Channel());
      await u6.bind(address6, port);
      closers.push(async () => u6.close());
    }
    udp = new UdpControl(
      controlChannels(dp, udp6),
      broker.newSession,
      broker.handler,
      clock,
      limits,
      broker.capabilitiesFor(4),
      broker.capabilitiesFor(6),
    );
    udp.start();
    const u = udp;
    closers.push(async () => u.close());
  }
  let tcp: TcpControl | undefined;
  if (config.listen.tcp) {
    const t = (tcp = new TcpControl(broker.newSession, broker.handler, clock, limits));
    closers.push(() => t.close());
    await t.listen(config.listen.address, port);
    if (address6 !== null) await t.listen(address6, port || t.port);
  }
  return { udp, tcp };
}

/** Sessions and control events of both transports added up (metrics). */
function countSessions(udp: UdpControl | undefined, tcp: TcpControl | undefined): SessionCounts {
  const a = udp?.counts() ?? { total: 0, halfOpen: 0 };
  const b = tcp?.counts() ?? { total: 0, halfOpen: 0 };
  const sa = udp?.stats ?? { crashes: 0, evictions: 0, busy: 0 };
  const sb = tcp?.stats ?? { crashes: 0, evictions: 0, busy: 0 };
  return {
    total: a.total + b.total,
    halfOpen: a.halfOpen + b.halfOpen,
    control: {
      crashes: sa.crashes + sb.crashes,
      evictions: sa.evictions + sb.evictions,
      busy: sa.busy + sb.busy,
      statelessVersion: udp?.statelessReplies ?? 0,
      unsentReplies: udp?.unsent ?? 0,
    },
  };
}
