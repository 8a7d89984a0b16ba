/** Route export in tests: what a kernel routing table holds (read with `ip -j` inside a namespace), and a
 *  tunnel registry to drive a RouteExporter with: the real one (broker/tunnels.ts) over a SQLite file and the
 *  in-memory data plane model, so tunnels are established and ended as the broker does it. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../../src/clock.js';
import { MemoryDataPlane } from '../../src/dataplane/memory.js';
import { AnonymousHoldings } from '../../src/broker/anonymous.js';
import { TunnelRegistry } from '../../src/broker/tunnels.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { NewTunnel, TunnelRecord } from '../../src/store/types.js';
import { RouteExporter, type RouteExporterOptions } from '../../src/cluster/routes.js';
import { execCommand, type Netns } from './netns.js';
import { newTunnel } from './rows.js';

/** The destinations of one family's routes in `table` with protocol tag `protocol` (any tag when null), sorted;
 *  with `via`, each followed by " via <gateway>" when it has one. A table that does not exist yet is empty. */
export async function tableRoutes(
  ns: Netns,
  family: '-4' | '-6',
  table: number | string,
  protocol: number | null,
  opts: { via?: boolean } = {},
): Promise<string[]> {
  const filter = protocol === null ? [] : ['proto', String(protocol)];
  const r = await execCommand('ip', ['-n', ns.name, '-j', family, 'route', 'show', 'table', String(table), ...filter]);
  if (r.code !== 0) {
    if (/FIB table does not exist/.test(r.stderr)) return [];
    throw new Error(`ip route show failed: ${r.stderr}`);
  }
  const rows = JSON.parse(r.stdout || '[]') as { dst: string; gateway?: string }[];
  return rows
    .map((row) => {
      // ip -j writes a host route without its length
      const dst = row.dst.includes('/') ? row.dst : `${row.dst}/${family === '-6' ? 128 : 32}`;
      return opts.via && row.gateway ? `${dst} via ${row.gateway}` : dst;
    })
    .sort();
}

/** A TUN device in `ns`, up (a persistent one: no process holds it, so it has no carrier, which routes allow). */
export async function tunDevice(ns: Netns, name: string): Promise<void> {
  await ns.ip('tuntap', 'add', 'dev', name, 'mode', 'tun');
  await ns.ip('link', 'set', 'dev', name, 'up');
}

export interface RegistryLab {
  /** A registry over the lab's store: the first one, or a new process's (call restore()). */
  registry(): TunnelRegistry;
  /** An exporter running `ip` in the namespace, closed at the test's end. */
  exporter(o: Omit<RouteExporterOptions, 'log' | 'netns'>): RouteExporter;
  /** A new tunnel row, offered (client 192.0.2.<10+n>), for a registry to establish. */
  offer(over: Partial<NewTunnel>): Promise<TunnelRecord>;
}

/** A store, a data plane model and exporters for `ns`, all closed and removed when the test ends. */
export async function registryLab(t: TestContext, ns: Netns): Promise<RegistryLab> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-routes-'));
  const store = await openSqliteStore({ file: path.join(dir, 'broker.db') });
  const clock = new ManualClock(1_000_000);
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0, clock });
  await dp.start();
  const exporters: RouteExporter[] = [];
  t.after(async () => {
    for (const e of exporters) await e.close();
    await dp.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const log = pino({ level: process.env.TEST_LOG ? 'debug' : 'silent' });
  const idle = { idleIntervals: 4, idleMinS: 60, anonymousIdleMaxS: 120 };
  let n = 0;
  return {
    registry: () => new TunnelRegistry({ dataplane: dp, store, clock, log, anonymous: new AnonymousHoldings(), idle }),
    exporter: (o) => {
      const e = new RouteExporter({ ...o, log, netns: ns.name });
      exporters.push(e);
      return e;
    },
    offer: (over) => store.createTunnel(newTunnel({ clientIpv4: `192.0.2.${10 + ++n}`, ...over }), clock.now()),
  };
}
