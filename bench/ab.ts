/** @module bench/ab: `npm run bench:ab`. The broker's CPU time a session of this checkout against another build
 *  of it (`BENCH_AB_BASE`: the root of a checkout whose dist/ is built), for changes smaller than the machine's
 *  noise. These 2-vCPU machines change speed by a quarter or more within minutes, so two `bench:control` runs a
 *  minute apart differ by more than most changes. Here both brokers run at once (each on its own SQLite file,
 *  both pinned to CPU 0, each with its own 50 client sockets on CPU 1), and the clients drive one of them at a
 *  time in short slices, alternating which goes first in each round: the two builds of a round see the same
 *  phase of the machine. It prints each round's µs a session of both, their ratio and each slice's p99 set-up
 *  latency, then the median ratio and how many rounds this checkout was the cheaper. The idle broker beside
 *  the driven one costs well under 1 % of a core (its timers). A slice of each, unmeasured, warms both up. */

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDist } from './output.js';
import { pinClientsToCpu1, sessionScripts, startServe } from './serve.js';
import { CONCURRENCY, Client, drive, pct } from './session-load.js';

const BASE = process.env.BENCH_AB_BASE;
const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 10);
const SLICE_S = Number(process.env.BENCH_AB_SECONDS ?? 2);
const CASE = (process.env.BENCH_AB_CASE ?? 'anonymous') as 'anonymous' | 'plain' | 'digest';

interface Side {
  name: string;
  proc: ChildProcess;
  clients: Client[];
  once: ReturnType<typeof sessionScripts>[typeof CASE];
  us: number[];
  p99: number[];
}

async function main(): Promise<void> {
  if (!BASE) throw new Error('BENCH_AB_BASE must name the root of the checkout to compare with (its dist/ built)');
  const baseCli = path.resolve(BASE, 'dist/cli/tsp-broker.js');
  if (!existsSync(baseCli)) throw new Error(`${baseCli} does not exist: run \`npm run build\` in ${BASE} first`);
  if (!['anonymous', 'plain', 'digest'].includes(CASE)) throw new Error(`BENCH_AB_CASE: no case '${CASE}'`);
  // two native data planes would both claim the TUN device tsp0 and the same pool routes
  if ((process.env.BENCH_DATAPLANE ?? 'memory') !== 'memory')
    throw new Error('bench:ab runs two brokers at once, on the memory data plane only: unset BENCH_DATAPLANE');
  pinClientsToCpu1();
  buildDist();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-ab-'));
  const sides: Side[] = [];
  const stop = () => sides.forEach((s) => s.proc.kill('SIGKILL'));
  process.on('exit', stop);
  try {
    for (const [name, cli] of [
      ['base', baseCli],
      ['this', path.resolve('dist/cli/tsp-broker.js')],
    ] as const) {
      const store = { path: path.join(dir, `${name}.db`) };
      const { proc, port } = await startServe({ dir, name, store, broker: [cli], accounts: CASE !== 'anonymous' });
      const clients = await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          const c = new Client(port);
          await c.open();
          return c;
        }),
      );
      sides.push({ name, proc, clients, once: sessionScripts()[CASE], us: [], p99: [] });
    }
    console.log(
      `tsp-broker A/B: ${CASE} sessions, concurrency ${CONCURRENCY}, ${ROUNDS} rounds of ${SLICE_S} s a build (after 0.5 s warm-up), alternating; base = ${BASE}`,
    );
    const cols = ['base us', 'this us', 'this/base', 'base p99', 'this p99'];
    console.log(`${'round'.padEnd(6)} ${cols.map((c) => c.padStart(9)).join(' ')}`);
    // first a slice each unmeasured: the JIT's first minutes would weigh on round 1
    for (const s of sides) await drive(s.clients, s.once, s.proc.pid, { warmup: 0, seconds: SLICE_S });
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
        const res = await drive(s.clients, s.once, s.proc.pid, { warmup: 0.5, seconds: SLICE_S });
        if (res.errors > 0) throw new Error(`${s.name}: ${res.errors} sessions failed`);
        s.us.push(((res.cpuSeconds ?? NaN) / res.count) * 1e6);
        s.p99.push(pct(res.latencies, 99));
      }
      const [b, t] = [sides[0]!.us[r]!, sides[1]!.us[r]!];
      const row = [
        b.toFixed(0),
        t.toFixed(0),
        (t / b).toFixed(3),
        sides[0]!.p99[r]!.toFixed(1),
        sides[1]!.p99[r]!.toFixed(1),
      ];
      console.log(`${String(r + 1).padEnd(6)} ${row.map((c) => c.padStart(9)).join(' ')}`);
    }
    console.log(
      'us = broker CPU (/proc, in clock ticks: a 2 s slice is about 200 of them, so each figure is good to about 1 %) over the sessions completed in the slice; p99 ms = whole session set-up',
    );
    const ratios = sides[1]!.us.map((t, r) => t / sides[0]!.us[r]!);
    const cheaper = ratios.filter((x) => x < 1).length;
    console.log(
      `median this/base ${median(ratios).toFixed(3)}; this cheaper in ${cheaper} of ${ROUNDS} rounds; median us a session: base ${median(sides[0]!.us).toFixed(0)}, this ${median(sides[1]!.us).toFixed(0)}; median p99 ms (each slice's, of whole sessions): base ${median(sides[0]!.p99).toFixed(1)}, this ${median(sides[1]!.p99).toFixed(1)}`,
    );
  } finally {
    for (const s of sides) s.clients.forEach((c) => c.close());
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

await main();
