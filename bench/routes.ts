/** @module bench/routes: `npm run bench:routes` (root). Route export (cluster/routes.ts) at scale, in a network
 *  namespace with a TUN device:
 *   - start: a registry with BENCH_TUNNELS live tunnels (100,000 by default; a /64 link block each, every tenth
 *     with a delegated /56) restored, the exporter started: time until every route is in the kernel, and the
 *     longest the event loop was held meanwhile;
 *   - changes: BENCH_CHANGES tunnels ended and as many established, as events, one by one: the time the
 *     handlers took on the event loop (what a change costs the broker), then until the kernel has them all;
 *   - close: the flush of every route;
 *   - the baseline, in the same run: `ip -force -batch FILE` alone on the same start's commands (what the
 *     kernel and iproute2 take, without the broker), then one `ip route flush`.
 *  The kernel's table is counted after each step, so a number is only printed for work that was done. */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Events } from '../src/broker/events.js';
import type { TunnelEventMap } from '../src/broker/tunnels.js';
import type { TunnelRecord } from '../src/store/types.js';
import { newTunnelRecord } from '../src/store/tunnel-record.js';
import { RouteExporter } from '../src/cluster/routes.js';
import { routesOf } from '../src/cluster/routes-of.js';
import { Topology, execCommand, type Netns } from '../test/helpers/netns.js';
import { newTunnel } from '../test/helpers/rows.js';

const TUNNELS = Number(process.env.BENCH_TUNNELS ?? 100_000);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 10_000);
const TABLE = 100;
const PROTO = 150;

/** Tunnel i: link block 2001:db8:<i / 65536>:<i % 65536>::/64; every tenth a /56 in 2001:db8:8000::/33. */
function tunnel(i: number): TunnelRecord {
  const hex = (n: number) => n.toString(16);
  const j = i / 10;
  const prefix = i % 10 === 0 ? `2001:db8:${hex(0x8000 + (j >> 8))}:${hex((j & 0xff) << 8)}::` : null;
  const t = newTunnel({
    clientIpv6: `2001:db8:${hex(i >> 16)}:${hex(i & 0xffff)}::2`,
    serverIpv6: `2001:db8:${hex(i >> 16)}:${hex(i & 0xffff)}::1`,
    prefix,
    prefixLen: prefix ? 56 : null,
  });
  return newTunnelRecord(t, 0, { id: i + 1, username: null, establishedAt: 0 });
}

async function countRoutes(ns: Netns): Promise<number> {
  const r = await execCommand('ip', [
    '-n',
    ns.name,
    '-6',
    'route',
    'show',
    'table',
    String(TABLE),
    'proto',
    String(PROTO),
  ]);
  return r.stdout.split('\n').filter(Boolean).length;
}

/** The longest gap between timer ticks while `work` runs: how long the event loop was held. */
async function loopHeld<T>(work: () => Promise<T>): Promise<{ value: T; maxGapMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 1);
  try {
    return { value: await work(), maxGapMs };
  } finally {
    clearInterval(timer);
  }
}

/** `ip -force -batch` on a file of the start's commands, then a flush: the floor under the exporter's start. */
async function baseline(ns: Netns): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-bench-routes-'));
  try {
    const file = path.join(dir, 'routes.batch');
    let text = '';
    for (let i = 0; i < TUNNELS; i++)
      for (const p of routesOf(tunnel(i), 64)) text += `route replace ${p} dev tsp0 table ${TABLE} proto ${PROTO}\n`;
    writeFileSync(file, text);
    const t0 = performance.now();
    // the same timer-gap measure as the start's, while this process only waits: the noise floor of that figure
    const idle = await loopHeld(() =>
      execCommand('ip', ['-n', ns.name, '-force', '-batch', file], { timeoutMs: 300_000 }),
    );
    const batchMs = performance.now() - t0;
    const installed = await countRoutes(ns);
    const t1 = performance.now();
    await execCommand('ip', ['-n', ns.name, '-6', 'route', 'flush', 'table', String(TABLE), 'proto', String(PROTO)]);
    console.log(
      `baseline: ip -batch alone installed ${installed} routes in ${batchMs.toFixed(0)} ms; ` +
        `one flush ${(performance.now() - t1).toFixed(0)} ms (an idle event loop's longest gap meanwhile: ` +
        `${idle.maxGapMs.toFixed(1)} ms)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const topo = await Topology.create();
  try {
    const ns = await topo.namespace('bench-routes');
    await ns.ip('tuntap', 'add', 'dev', 'tsp0', 'mode', 'tun');
    await ns.ip('link', 'set', 'dev', 'tsp0', 'up');
    const live = new Map<number, TunnelRecord>();
    for (let i = 0; i < TUNNELS; i++) live.set(i + 1, tunnel(i));
    const events = new Events<TunnelEventMap>();
    const source = {
      events,
      find: (p: (t: TunnelRecord) => boolean) => [...live.values()].filter(p),
      has: (id: number) => live.has(id),
    };
    const log = pino({ level: 'warn' });
    const exporter = new RouteExporter({
      table: TABLE,
      protocol: PROTO,
      device: 'tsp0',
      linkLeaseLen: 64,
      log,
      netns: ns.name,
    });

    const t0 = performance.now();
    const start = await loopHeld(async () => {
      await exporter.start(source);
      await exporter.settled();
    });
    const startMs = performance.now() - t0;
    const installed = await countRoutes(ns);
    console.log(
      `start: ${TUNNELS} tunnels, ${installed} routes in the kernel in ${startMs.toFixed(0)} ms ` +
        `(event loop held at most ${start.maxGapMs.toFixed(1)} ms)`,
    );

    const fresh = Array.from({ length: CHANGES }, (_, i) => tunnel(TUNNELS + i)); // made before the clock starts
    const t1 = performance.now();
    for (let i = 0; i < CHANGES; i++) {
      const old = live.get(i + 1)!;
      live.delete(old.id);
      events.emit('ended', {
        record: old,
        reason: 'idle',
        counters: { id: old.id, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, lastSeenAt: null },
      });
      live.set(fresh[i]!.id, fresh[i]!);
      events.emit('established', { record: fresh[i]! });
    }
    const handlersMs = performance.now() - t1;
    await exporter.settled();
    const changesMs = performance.now() - t1;
    const after = await countRoutes(ns);
    console.log(
      `changes: ${CHANGES} ends and ${CHANGES} establishments: handlers ${handlersMs.toFixed(0)} ms on the event loop ` +
        `(${((handlersMs * 1000) / (2 * CHANGES)).toFixed(1)} µs each), in the kernel after ${changesMs.toFixed(0)} ms; ` +
        `${after} routes`,
    );

    const t2 = performance.now();
    await exporter.close();
    console.log(`close: flushed in ${(performance.now() - t2).toFixed(0)} ms, ${await countRoutes(ns)} routes left`);
    console.log(
      `failures: ${exporter.stats.failures}, memory rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
    );
    await baseline(ns);
  } finally {
    await topo.cleanup();
  }
}

await main();
