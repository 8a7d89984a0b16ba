/** @module test/helpers/cluster: broker nodes in-process on one temporary PostgreSQL database (test/helpers/pg.ts),
 *  each on its own loopback address and all on the same port, so a redirect (which names addresses, not ports)
 *  works with tspc's negotiate() on loopback. The sweep is off (the clock runs no interval of 5 s or more), so
 *  only the nodes' messages end a tunnel on another node. */

import dgram from 'node:dgram';
import { systemClock, type Clock } from '../../src/clock.js';
import { resolveConfig, type RawConfig } from '../../src/client/config.js';
import { negotiate } from '../../src/client/negotiate.js';
import { silentLog } from '../../src/client/log.js';
import { startTestBroker, type TestBroker } from './broker.js';
import assert from 'node:assert/strict';
import { eventually } from './clients.js';
import { createTempDatabase, type TempDatabase } from './pg.js';

/** Waits for `pred`, failing the test when it does not hold within `ms` (eventually() only returns false). */
export async function until(pred: () => boolean, ms: number, what = 'the condition'): Promise<void> {
  assert.ok(await eventually(pred, ms), `${what} within ${ms} ms`);
}

export const NODE_ADDRESS = { a: '127.0.36.1', b: '127.0.36.2' } as const;
export type NodeName = keyof typeof NODE_ADDRESS;

/** The system clock with the sweep (every 5 s in these tests) switched off; the 1 s heartbeat runs. */
export const noSweep: Clock = {
  ...systemClock,
  setInterval: (fn, ms, o) => (ms >= 5000 ? { cancel: () => undefined } : systemClock.setInterval(fn, ms, o)),
};

async function freePort(address: string): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, address, resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export class TestCluster {
  readonly nodes: Partial<Record<NodeName, TestBroker>> = {};
  private constructor(
    readonly db: TempDatabase,
    readonly port: number,
  ) {}

  static async create(prefix: string): Promise<TestCluster> {
    const db = await createTempDatabase(prefix);
    return new TestCluster(db, await freePort(NODE_ADDRESS.a));
  }

  node(name: NodeName): TestBroker {
    const n = this.nodes[name];
    if (!n) throw new Error(`node ${name} is not running`);
    return n;
  }

  /** Starts node-<name> (cluster: heartbeat 1 s, dead after 3 s; `extra` merged into the configuration). */
  async start(
    name: NodeName,
    extra: { cluster?: Record<string, unknown>; [k: string]: unknown } = {},
  ): Promise<TestBroker> {
    const { cluster, ...rest } = extra;
    const n = await startTestBroker(
      {
        listen: { address: NODE_ADDRESS[name], port: this.port },
        store: { driver: 'postgres', url: this.db.url },
        cluster: { nodeId: `node-${name}`, heartbeatS: 1, deadAfterS: 3, ...cluster },
        tunnels: { idleMinS: 60 },
        ...rest,
      } as never,
      { clock: noSweep },
    );
    this.nodes[name] = n;
    return n;
  }

  async stop(name: NodeName): Promise<void> {
    await this.nodes[name]?.stop();
    delete this.nodes[name];
  }

  /** tspc's negotiation against a node's address (PLAIN as alice unless `raw` says otherwise). */
  negotiate(server: string, raw: RawConfig = {}) {
    const { config } = resolveConfig({
      server: `${server}:${this.port}`,
      tunnel_mode: 'v6udpv4',
      auth_method: 'plain',
      userid: 'alice',
      passwd: 'correct horse',
      ...raw,
    });
    return negotiate(config, config.server, silentLog);
  }

  async close(): Promise<void> {
    for (const name of Object.keys(this.nodes) as NodeName[]) await this.stop(name).catch(() => undefined);
    await this.db.drop();
  }
}
