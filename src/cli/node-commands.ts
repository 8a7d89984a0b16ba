/** @module cli/node-commands: `tsp-broker node list|drain|undrain|forget`, the cluster's nodes as the shared
 *  store has them (docs/cluster.md). A drain or undrain is a row change plus a message: the node hears it at
 *  once and redirects new sessions (or takes them again). With SQLite there is one broker and no registry. */

import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { BrokerError } from '../errors.js';
import type { NodeRecord, Store } from '../store/types.js';
import { nodeAlive } from '../store/node-types.js';

export interface NodeCommandDeps {
  withConfigFlags(cmd: Command): Command;
  configFrom(o: Record<string, unknown>): Config;
  openFor(o: Record<string, unknown>, config: Config): Promise<{ store: Store }>;
}

/** Whether a node is alive by its last heartbeat and its configured silence limit (cluster.deadAfterS of the
 *  configuration the command was given: the nodes' own should match). */
export function nodeStatus(n: NodeRecord, deadAfterS: number, now: number): 'alive' | 'dead' | 'stopped' {
  if (n.heartbeatAt === 0) return 'stopped';
  return nodeAlive(n, deadAfterS, now) ? 'alive' : 'dead';
}

export function registerNodeCommands(program: Command, deps: NodeCommandDeps): void {
  const node = program.command('node').description('the broker nodes sharing a PostgreSQL store (docs/cluster.md)');
  const withStore = async <T>(o: Record<string, unknown>, f: (s: Store, c: Config) => Promise<T>): Promise<T> => {
    const config = deps.configFrom(o);
    if (config.store.driver !== 'postgres')
      throw new BrokerError(
        'CFG_INVALID',
        'store.driver: node commands need the shared PostgreSQL store (--db-url or store.url); a SQLite broker is the only node',
      );
    const { store } = await deps.openFor(o, config);
    try {
      return await f(store, config);
    } finally {
      await store.close();
    }
  };

  deps
    .withConfigFlags(node.command('list'))
    .description('list the nodes: alive or dead, draining, tunnels, capacity, last heartbeat')
    .option('--json', 'machine-readable output')
    .action(async (o: Record<string, unknown>) => {
      await withStore(o, async (store, config) => {
        const now = Date.now();
        const nodes = (await store.listNodes()).map((n) => ({
          ...n,
          status: nodeStatus(n, config.cluster.deadAfterS, now),
        }));
        if (o.json) return console.log(JSON.stringify(nodes, null, 2));
        console.log(['NODE', 'STATUS', 'DRAINING', 'TUNNELS', 'CAPACITY', 'ADDRESS', 'HEARTBEAT'].join('\t'));
        for (const n of nodes)
          console.log(
            [
              n.name,
              n.status,
              n.draining ? 'yes' : 'no',
              n.tunnels,
              n.capacity ?? '-',
              [n.ipv4, n.ipv6].filter((a) => a !== null).join(' ') || '-',
              n.heartbeatAt === 0
                ? '- (stopped cleanly)'
                : `${new Date(n.heartbeatAt).toISOString()} (${Math.round((now - n.heartbeatAt) / 1000)} s ago)`,
            ].join('\t'),
          );
      });
    });

  for (const [name, draining, what] of [
    ['drain', true, 'take no new tunnels: new sessions are redirected to other live nodes (TSP 1200)'],
    ['undrain', false, 'take new tunnels again'],
  ] as const)
    deps
      .withConfigFlags(node.command(`${name} <node>`))
      .description(what)
      .action(async (nodeName: string, o: Record<string, unknown>) => {
        await withStore(o, async (store) => {
          if (!(await store.setNodeDraining(nodeName, draining)))
            throw new BrokerError('STORE_NOT_FOUND', `no node named ${nodeName} (tsp-broker node list shows them)`);
          await store.addAudit({
            at: Date.now(),
            actor: 'cli',
            action: `node.${name}`,
            target: nodeName,
            detail: null,
          });
          console.log(`node ${nodeName} ${draining ? 'draining: it redirects new sessions' : 'takes new sessions'}`);
        });
      });

  deps
    .withConfigFlags(node.command('forget <node>'))
    .description('delete a dead node for good: its row, and the tunnels it still had (ended, leases released)')
    .option('--force', 'even if it looks alive: its tunnels end there too, and it registers again')
    .action(async (nodeName: string, o: Record<string, unknown>) => {
      await withStore(o, async (store, config) => {
        const n = (await store.listNodes()).find((x) => x.name === nodeName);
        if (!n) throw new BrokerError('STORE_NOT_FOUND', `no node named ${nodeName} (tsp-broker node list shows them)`);
        if (nodeStatus(n, config.cluster.deadAfterS, Date.now()) === 'alive' && !o.force)
          throw new BrokerError(
            'STORE_CONFLICT',
            `node ${nodeName} is alive (heard from ${Math.round((Date.now() - n.heartbeatAt) / 1000)} s ago): stop it first, or --force`,
          );
        const r = await store.forgetNode(nodeName, Date.now());
        if (!r) throw new BrokerError('STORE_NOT_FOUND', `no node named ${nodeName}`);
        await store.addAudit({
          at: Date.now(),
          actor: 'cli',
          action: 'node.forget',
          target: nodeName,
          detail: { tunnelsEnded: r.tunnelsEnded },
        });
        console.log(`node ${nodeName} forgotten; ${r.tunnelsEnded} tunnel(s) it carried ended`);
      });
    });
}
