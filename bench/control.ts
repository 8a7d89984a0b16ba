/** @module bench/control: `npm run bench:control`. Control-plane throughput of a real `tsp-broker serve`
 *  process (MemoryDataPlane, or BENCH_DATAPLANE=native; SQLite store on, logging at info) driven over UDP on
 *  loopback at concurrency 50:
 *   - full anonymous sessions per second (VERSION, AUTHENTICATE ANONYMOUS, create, accept: 4 round trips),
 *   - full DIGEST-MD5 sessions per second (VERSION, AUTHENTICATE, response, poll, create, accept: 6 round
 *     trips; each account's new tunnel replaces its previous one in the store),
 *  with p50/p99 setup latency, and beside them in the same run the baseline: the rate of a bare UDP
 *  request/reply loop from the same 50 client sockets to a node:dgram echo server process (the broker's socket
 *  type, one reply per request, no TSP). The server process is pinned to CPU 0 and this client to CPU 1 when
 *  taskset exists. Round trips per second are compared with the baseline's, since the machine is noisy. */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDist } from './output.js';
import { hasTaskset, pin, pinClientsToCpu1, sessionScripts, startServe, waitForPort } from './serve.js';
import {
  CONCURRENCY,
  Client,
  SECONDS,
  WARMUP_SECONDS,
  drive,
  freshPgDatabase,
  pct,
  type Result,
  type StoreChoice,
} from './session-load.js';

/** BENCH_CASES=anonymous,digest runs only those cases (for profiling one path); all three by default. */
const CASES = new Set((process.env.BENCH_CASES ?? 'anonymous,plain,digest').split(','));
/** The broker runs from dist/ (built first), as an installed one does; BENCH_FROM_SOURCE=1 runs src/ through
 *  tsx instead (a profile then names the TypeScript files). */
const FROM_SOURCE = process.env.BENCH_FROM_SOURCE === '1';
const BROKER = FROM_SOURCE
  ? ['--import', import.meta.resolve('tsx'), path.resolve('src/cli/tsp-broker.ts')]
  : [path.resolve('dist/cli/tsp-broker.js')];
pinClientsToCpu1();

const ECHO_SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(0, '127.0.0.1', () => console.log('port ' + s.address().port));
`;

/** Starts `tsp-broker serve` on `store`, with CONCURRENCY accounts, and measures the three kinds of session. */
async function benchBroker(
  dir: string,
  dialect: 'sqlite' | 'postgres',
  store: StoreChoice,
  procs: ChildProcess[],
): Promise<[string, Result, number][]> {
  const profile = process.env.BENCH_PROFILE;
  const { proc: broker, port } = await startServe({
    dir,
    name: dialect,
    store,
    broker: BROKER,
    accounts: CASES.has('plain') || CASES.has('digest'),
    ...(profile
      ? {
          nodeArgs: [
            '--cpu-prof',
            '--cpu-prof-interval',
            process.env.BENCH_PROFILE_US ?? '1000',
            `--cpu-prof-dir=${profile}`,
          ],
        }
      : {}),
  });
  procs.push(broker);
  const clients = await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const c = new Client(port);
      await c.open();
      return c;
    }),
  );
  const scripts = sessionScripts();
  const run = (name: 'anonymous' | 'plain' | 'digest') =>
    CASES.has(name) ? drive(clients, scripts[name], broker.pid) : Promise.resolve(undefined);
  const anon = await run('anonymous');
  const plain = await run('plain');
  const digest = await run('digest');
  clients.forEach((c) => c.close());
  // a clean stop (SIGTERM) so the broker writes its profile when BENCH_PROFILE is set
  broker.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 5000).unref() && broker.once('exit', r));
  const ran: [string, Result | undefined, number][] = [
    ['anonymous sessions', anon, 4],
    ['PLAIN sessions', plain, 5],
    ['DIGEST-MD5 sessions', digest, 6],
  ];
  return ran.filter((r): r is [string, Result, number] => r[1] !== undefined);
}

function row(name: string, store: string, r: Result, base: Result, trips: number): string {
  const rate = r.count / r.seconds;
  const ceiling = base.count / base.seconds / trips;
  const f = (x: number, d = 0) => x.toFixed(d).padStart(7);
  const cpu = r.cpuSeconds ?? NaN;
  return `${name.padEnd(26)} ${store.padEnd(8)} ${f(rate)} ${f(r.roundTrips / r.seconds)} ${f(ceiling)} ${f(rate / ceiling, 3)} ${f(pct(r.latencies, 50), 2)} ${f(pct(r.latencies, 99), 2)} ${String(r.errors).padStart(6)} ${f((cpu / r.count) * 1e6)} ${f((100 * cpu) / r.seconds)}`;
}

async function main(): Promise<void> {
  if (!FROM_SOURCE) buildDist();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-control-'));
  const procs: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const stop = () => procs.forEach((p) => p.kill('SIGKILL'));
  process.on('exit', stop);
  try {
    // baseline: bare request/reply
    const [ecmd, eargs] = pin(0, [process.execPath, '-e', ECHO_SERVER]);
    const echo = spawn(ecmd, eargs, { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(echo);
    const echoPort = await waitForPort(echo, /port (\d+)/);
    const clients = await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        const c = new Client(echoPort);
        await c.open();
        return c;
      }),
    );
    const base = await drive(
      clients,
      async (c) => {
        await c.request('VERSION=2.0.2\r\n');
        return 1;
      },
      echo.pid,
    );
    clients.forEach((c) => c.close());
    echo.kill('SIGKILL');

    // the broker, on each store dialect: SQLite, and PostgreSQL when a URL is given
    const pgUrl = process.env.BENCH_PG_URL ?? process.env.TSP_TEST_PG_URL;
    const rows: string[] = [];
    const byTrip: string[] = [];
    for (const dialect of pgUrl ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)) {
      const store = dialect === 'sqlite' ? { path: path.join(dir, 'broker.db') } : await freshPgDatabase(pgUrl!);
      if (store.drop) cleanups.push(store.drop);
      const r = await benchBroker(dir, dialect, store, procs);
      for (const [name, res, trips] of r) {
        rows.push(row(`${name} (${trips} rtt)`, dialect, res, base, trips));
        const each = res.trips.map((ms, k) => `${k + 1}: ${pct(ms, 50).toFixed(1)}/${pct(ms, 99).toFixed(1)}`);
        byTrip.push(`${`${name} ${dialect}`.padEnd(35)} ${each.join('  ')}`);
      }
    }
    console.log(
      `tsp-broker control-plane benchmark: concurrency ${CONCURRENCY}, ${SECONDS} s measured after ${WARMUP_SECONDS} s warm-up, UDP on loopback${hasTaskset ? ', server on CPU 0, client on CPU 1' : ''}`,
    );
    console.log(
      `${'case'.padEnd(26)} ${'store'.padEnd(8)} ${'rate/s'.padStart(7)} ${'rtt/s'.padStart(7)} ${'ceiling'.padStart(7)} ${'of ceil'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(6)} ${'cpu us'.padStart(7)} ${'busy %'.padStart(7)}`,
    );
    console.log(row('baseline: bare UDP echo', '-', base, base, 1));
    for (const r of rows) console.log(r);
    console.log('\nround trips of those sessions in turn (1: VERSION), p50/p99 ms: where the latency is');
    for (const b of byTrip) console.log(b);
    console.log(
      'ceiling = the baseline echo rate divided by the round trips a session takes (what this machine allows); of ceil = rate / ceiling; latency = whole session setup (one request for the baseline); errors = sessions that timed out (a lost datagram is never retransmitted here); cpu us = the server process CPU time (every thread: the event loop, the fsyncs on the thread pool, GC) in the window over the sessions completed in it (sessions cut by its edges add about 1 %; on PostgreSQL the database server CPU is not in it); busy % = that CPU time over the window (100 = one core: below it the server waits, for the disk or the client)',
    );
  } finally {
    stop();
    for (const c of cleanups) await c().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
