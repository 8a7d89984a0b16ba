/** @module admin/cluster-metrics: the cluster's families of the /metrics registry (admin/metrics.ts), from
 *  this node's view (cluster/node.ts: the rows it read at its last heartbeat). Label values are a fixed set;
 *  node names never become labels (a node an operator adds would add series).
 *
 *    tsp_cluster_nodes{state}          gauge  nodes by state: alive | dead | draining (alive and draining)
 *    tsp_cluster_draining              gauge  1 while this node is draining (new sessions redirected)
 *    tsp_cluster_messages_connected    gauge  1 while this node's LISTEN connection for other nodes' messages is up
 *  Redirected sessions are tsp_sessions_total{result="redirected"}. Without a cluster (SQLite) all are 0. */

import { Gauge, type Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';

export function registerClusterMetrics(registry: Registry, broker: Broker): void {
  const registers = [registry];
  new Gauge({
    name: 'tsp_cluster_nodes',
    help: 'Broker nodes sharing the store, by state as this node last read them (alive: heard from within cluster.deadAfterS; draining: alive and draining)',
    labelNames: ['state'],
    registers,
    collect() {
      const nodes = broker.cluster?.nodes() ?? [];
      this.set({ state: 'alive' }, nodes.filter((n) => n.alive).length);
      this.set({ state: 'dead' }, nodes.filter((n) => !n.alive).length);
      this.set({ state: 'draining' }, nodes.filter((n) => n.alive && n.draining).length);
    },
  });
  new Gauge({
    name: 'tsp_cluster_draining',
    help: 'Whether this node is draining: 1 while it redirects new sessions to other nodes',
    registers,
    collect() {
      this.set(broker.cluster?.draining ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tsp_cluster_messages_connected',
    help: "Whether this node's connection for other nodes' messages (PostgreSQL LISTEN) is up",
    registers,
    collect() {
      this.set(broker.cluster?.messagesConnected() ? 1 : 0);
    },
  });
}
