/** @module cluster/cluster: puts a broker's cluster parts together when several nodes share a PostgreSQL
 *  store (docs/cluster.md): the node's registry row and heartbeats (node.ts), the redirect decision handed to
 *  the broker's service, and the messages from other nodes (bus.ts):
 *    ended  -> the tunnels another node took over leave this node's data plane (its routes go with them)
 *    audit  -> the audit trail is read now (a kill, disable or delete made anywhere reaches us at once)
 *    node   -> a node's row changed (drained, undrained): heartbeat now, which reads every row
 *  After each (re)connection of the message channel it catches up from the rows: the audit trail, which of
 *  its live tunnels have ended in the store, and its own row. */

import os from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { NODE_NAME } from '../config/cluster.js';
import { BrokerError } from '../errors.js';
import type { Broker } from '../broker/broker.js';
import type { ClusterMessage, Store } from '../store/types.js';
import { ClusterBus } from './bus.js';
import { ClusterNode } from './node.js';

/** Early ends remembered at most (cluster messages naming tunnels not live yet). */
const EARLY_ENDS_MAX = 10_000;

/** Whether this configuration makes the broker a node of a cluster: a shared (PostgreSQL) store. */
export function isClustered(config: Config): boolean {
  return config.store.driver === 'postgres';
}

/** This node's name: cluster.nodeId, else the host name (CFG_INVALID when that is no valid node name), or
 *  'local' for the one broker of a SQLite file without a cluster.nodeId. */
export function nodeIdOf(config: Config): string {
  if (config.cluster.nodeId !== null) return config.cluster.nodeId;
  if (!isClustered(config)) return 'local';
  const host = os.hostname();
  if (NODE_NAME.test(host)) return host;
  throw new BrokerError('CFG_INVALID', `cluster.nodeId: the host name '${host}' is no node name; set one`);
}

/** The addresses other nodes' redirects list for this one. */
export function nodeAddresses(config: Config): { ipv4: string | null; ipv6: string | null } {
  const c = config.cluster;
  const listen4 = config.listen.address !== '0.0.0.0' ? config.listen.address : null;
  return {
    ipv4: c.address ?? config.serverIpv4 ?? listen4,
    ipv6: c.address6 ?? config.serverIpv6 ?? config.listen.address6,
  };
}

/** Every address this node's offers may name (what its old tunnel rows hold as their server address). */
export function addressesOf(config: Config): string[] {
  const a = nodeAddresses(config);
  const all = [a.ipv4, a.ipv6, config.serverIpv4, config.listen.address, config.serverIpv6, config.listen.address6];
  return [...new Set(all.filter((x): x is string => x !== null && x !== '0.0.0.0' && x !== '::'))];
}

export interface RunningCluster {
  node: ClusterNode;
  bus: ClusterBus;
  close(): Promise<void>;
}

export async function startCluster(deps: {
  config: Config;
  store: Store;
  broker: Broker;
  clock: Clock;
  log: Logger;
}): Promise<RunningCluster> {
  const { config, store, broker, clock } = deps;
  const log = deps.log.child({ node: store.nodeId });
  const addresses = nodeAddresses(config);
  if (config.cluster.nodeId === null)
    log.warn(
      { node: store.nodeId },
      'cluster.nodeId is not set: the host name is the node name; where it changes at each start (containers), a restart restores nothing and leaves the old name behind: set cluster.nodeId',
    );
  if (addresses.ipv4 === null && addresses.ipv6 === null)
    log.warn(
      'this node has no address for redirects (cluster.address, serverIpv4 or a specific listen.address): no other node will send clients here',
    );
  const node = new ClusterNode({
    store,
    config: config.cluster,
    addresses,
    liveTunnels: () => broker.tunnels.size,
    clock,
    log,
  });
  await node.start();
  // work started by messages, awaited at close so none of it meets a closed store
  const inflight = new Set<Promise<unknown>>();
  const failed = (what: string) => (err: unknown) => log.error({ err }, `cluster: ${what} failed`);
  const track = (what: string, p: Promise<unknown>) => {
    const q = p.catch(failed(what));
    inflight.add(q);
    void q.finally(() => inflight.delete(q));
  };
  broker.redirectHook = (returning, family) => node.redirect(returning, family);
  // ids another node ended before this node made them live (its message outran the local accept's commit):
  // ended as soon as they are; bounded, and forgotten after a minute
  const early = new Map<number, number>();
  const onEstablished = ({ record }: { record: { id: number } }) => {
    if (early.delete(record.id)) track('ending a moved tunnel', endMoved([record.id]));
  };
  broker.tunnels.events.on('established', onEstablished);
  const endMoved = async (ids: readonly number[]) => {
    const now = clock.now();
    for (const [id, until] of early) if (until < now) early.delete(id);
    for (const id of ids) if (!broker.tunnels.has(id) && early.size < EARLY_ENDS_MAX) early.set(id, now + 60_000);
    const live = ids.filter((id) => broker.tunnels.has(id));
    if (live.length === 0) return;
    log.info({ tunnels: live }, 'tunnels taken over by another node: ended here');
    await broker.tunnels.endAll(live.map((id) => [id, 'replaced']));
  };
  const onMessage = (m: ClusterMessage) => {
    if (m.kind === 'ended' && m.node === store.nodeId) track('ending moved tunnels', endMoved(m.ids));
    else if (m.kind === 'audit') void broker.followAudit();
    else if (m.kind === 'node') void node.beat(); // ours drained, or another's: redirects must know now
  };
  const catchUp = async () => {
    await broker.followAudit();
    const live = broker.liveTunnelIds();
    await endMoved(await store.endedOf(live));
    await node.beat();
  };
  const bus = new ClusterBus({
    url: config.store.url!,
    log,
    onMessage,
    onConnected: () => track('catching up', catchUp()),
  });
  broker.cluster = {
    name: node.name,
    get draining() {
      return node.draining;
    },
    nodes: () => node.nodes(),
    messagesConnected: () => bus.connected,
  };
  const checker = clock.setInterval(() => void bus.check(5000), config.cluster.heartbeatS * 1000, { unref: true });
  const detach = () => {
    checker.cancel();
    broker.tunnels.events.off('established', onEstablished);
    broker.redirectHook = undefined;
    broker.cluster = undefined;
  };
  try {
    await bus.start();
  } catch (err) {
    detach();
    await node.stop(true);
    throw new BrokerError(
      'STORE_FAILED',
      `cluster: cannot listen for other nodes' messages: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return {
    node,
    bus,
    async close() {
      detach();
      await bus.close();
      await Promise.allSettled([...inflight]);
      await node.stop(true);
    },
  };
}
