/** @module bench/control: `npm run bench:control`. Control-plane throughput of a real `tsp-broker serve`
 *  process (MemoryDataPlane, SQLite store on, logging at info) driven over UDP on loopback at concurrency 50:
 *   - full anonymous sessions per second (VERSION, AUTHENTICATE ANONYMOUS, create, accept: 4 round trips),
 *   - full DIGEST-MD5 sessions per second (VERSION, AUTHENTICATE, response, poll, create, accept: 6 round
 *     trips; each account's new tunnel replaces its previous one in the store),
 *  with p50/p99 setup latency, and beside them in the same run the baseline: the rate of a bare UDP
 *  request/reply loop from the same 50 client sockets to a node:dgram echo server process (the broker's socket
 *  type, one reply per request, no TSP). The server process is pinned to CPU 0 and this client to CPU 1 when
 *  taskset exists. Round trips per second are compared with the baseline's, since the machine is noisy. */

import dgram from 'node:dgram';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { framedRequest } from '../src/protocol/framing/content-length.js';
import { writeActionRequest, writeCreateRequest } from '../src/protocol/request-writer.js';
import { buildClientResponse, parseChallenge } from '../src/protocol/sasl/digest-md5.js';
import { encodePlain } from '../src/protocol/sasl/plain.js';
import { waitForOutput } from './output.js';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 1;
/** BENCH_LINK_MODE=shared-64 measures that pools.linkMode (a /126 per owner) instead of the default. */
const LINK_MODE = process.env.BENCH_LINK_MODE ?? 'per-account-64';
/** BENCH_CASES=anonymous,digest runs only those cases (for profiling one path); all three by default. */
const CASES = new Set((process.env.BENCH_CASES ?? 'anonymous,plain,digest').split(','));
const TSX = import.meta.resolve('tsx');
const CLI = path.resolve('src/cli/tsp-broker.ts');
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pin = (cpu: number, argv: string[]) =>
  (hasTaskset ? ['taskset', ['-c', String(cpu), ...argv]] : [argv[0]!, argv.slice(1)]) as [string, string[]];
if (hasTaskset) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)]);

/** One client socket doing strict request/reply by sequence number. */
class Client {
  readonly s = dgram.createSocket('udp4');
  private seq = 0xf0;
  private pending: ((b: Buffer) => void) | undefined;
  private want = -1;
  constructor(readonly port: number) {
    this.s.on('message', (m) => {
      if (m.length >= 8 && m.readUInt32BE(0) === this.want && this.pending) {
        const p = this.pending;
        this.pending = undefined;
        p(m);
      }
    });
  }
  async open(): Promise<void> {
    await new Promise<void>((r) => this.s.bind(0, '127.0.0.1', () => r()));
  }
  request(body: Buffer | string, timeoutMs = 5000): Promise<Buffer> {
    const h = Buffer.alloc(8);
    const seq = this.seq++ & 0x0fffffff;
    h.writeUInt32BE((0xf0000000 | seq) >>> 0, 0);
    h.writeUInt32BE(0, 4);
    this.want = (0xf0000000 | seq) >>> 0;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('request timed out')), timeoutMs);
      this.pending = (b) => {
        clearTimeout(t);
        resolve(b);
      };
      this.s.send(
        Buffer.concat([h, typeof body === 'string' ? Buffer.from(body, 'latin1') : body]),
        this.port,
        '127.0.0.1',
      );
    });
  }
  resetSeq(): void {
    this.seq = 0xf0;
  }
  close(): void {
    this.s.close();
  }
}

interface Result {
  count: number;
  roundTrips: number;
  seconds: number;
  latencies: number[];
  errors: number;
}

/** Runs `once` on every client in a loop for the measured window after a warm-up. */
async function drive(clients: Client[], once: (c: Client, i: number) => Promise<number>): Promise<Result> {
  const start = performance.now();
  const measureFrom = start + WARMUP_SECONDS * 1000;
  const end = measureFrom + SECONDS * 1000;
  const r: Result = { count: 0, roundTrips: 0, seconds: SECONDS, latencies: [], errors: 0 };
  await Promise.all(
    clients.map(async (c, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const trips = await once(c, i);
          const t1 = performance.now();
          if (t0 >= measureFrom && t1 <= end) {
            r.count++;
            r.roundTrips += trips;
            r.latencies.push(t1 - t0);
          }
        } catch {
          r.errors++;
          c.resetSeq();
        }
      }
    }),
  );
  return r;
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function waitForPort(proc: ChildProcess, pattern: RegExp): Promise<number> {
  return Number((await waitForOutput(proc, pattern)).match[1]);
}

const ECHO_SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(0, '127.0.0.1', () => console.log('port ' + s.address().port));
`;

type StoreChoice = { path: string; drop?: undefined } | { url: string; drop: () => Promise<void> };

/** A database of its own on the PostgreSQL server `url` names, dropped after the run. */
async function freshPgDatabase(url: string): Promise<StoreChoice> {
  const { default: pg } = await import('pg');
  const name = `tsp_bench_${process.pid}`;
  const admin = async (q: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(q);
    } finally {
      await c.end();
    }
  };
  await admin(`drop database if exists ${name} with (force)`);
  await admin(`create database ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

/** Starts `tsp-broker serve` on `store`, with CONCURRENCY accounts, and measures the three kinds of session. */
async function benchBroker(
  dir: string,
  dialect: 'sqlite' | 'postgres',
  store: StoreChoice,
  procs: ChildProcess[],
): Promise<[string, Result, number][]> {
  // every client here comes from 127.0.0.1: lift the per-source anonymous quotas that protect a real pool
  const cfgFile = path.join(dir, `bench-${dialect}.json`);
  writeFileSync(
    cfgFile,
    JSON.stringify({
      limits: { anonymousPerSource: 100_000, anonymousPerPrefix24: 100_000 },
      auth: { plain: true, realm: 'bench' },
      pools: { linkMode: LINK_MODE },
      store: 'url' in store ? { driver: 'postgres', url: store.url } : { driver: 'sqlite', path: store.path },
    }),
  );
  // accounts only for the cases that log in (each `user add` is a process and an argon2id hash)
  for (let i = 0; i < (CASES.has('plain') || CASES.has('digest') ? CONCURRENCY : 0); i++) {
    const r = spawnSync(
      process.execPath,
      ['--import', TSX, CLI, 'user', 'add', `bench${i}`, '--password-stdin', '--config', cfgFile],
      { input: 'benchmark-pw\n' },
    );
    if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
  }
  const [bcmd, bargs] = pin(0, [
    process.execPath,
    ...(process.env.BENCH_PROFILE
      ? [
          '--cpu-prof',
          '--cpu-prof-interval',
          process.env.BENCH_PROFILE_US ?? '1000',
          `--cpu-prof-dir=${process.env.BENCH_PROFILE}`,
        ]
      : []),
    '--import',
    TSX,
    CLI,
    'serve',
    '--config',
    cfgFile,
    '--listen',
    '127.0.0.1',
    '--port',
    '0',
    '--dataplane',
    'memory',
    '--no-admin',
    '--log-level',
    'info',
  ]);
  const broker = spawn(bcmd, bargs, { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(broker);
  const port = await waitForPort(broker, /"udp":(\d+)/);
  const clients = await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const c = new Client(port);
      await c.open();
      return c;
    }),
  );
  const create = framedRequest(writeCreateRequest({ type: 'v6udpv4', clientIpv4: '127.0.0.1', keepaliveInterval: 30 }));
  const accept = framedRequest(writeActionRequest('accept'));
  const expect = (b: Buffer, prefix: string) => {
    if (!b.subarray(8).toString('latin1').startsWith(prefix))
      throw new Error(`unexpected reply ${b.subarray(8, 60).toString()}`);
  };
  const tunnel = async (c: Client) => {
    expect(await c.request(create), 'Content-length');
    await c.request(accept);
  };
  const run = (name: string, once: (c: Client, i: number) => Promise<number>) =>
    CASES.has(name) ? drive(clients, once) : Promise.resolve(undefined);
  const anon = await run('anonymous', async (c) => {
    c.resetSeq();
    expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
    expect(await c.request('AUTHENTICATE ANONYMOUS\r\n\0'), '200');
    await tunnel(c);
    return 4;
  });
  const plain = await run('plain', async (c, i) => {
    c.resetSeq();
    expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
    await c.request('AUTHENTICATE PLAIN\r\n\0');
    expect(await c.request(encodePlain({ username: `bench${i}`, password: 'benchmark-pw' })), '200');
    await tunnel(c);
    return 5;
  });
  const digest = await run('digest', async (c, i) => {
    c.resetSeq();
    expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
    const ch = await c.request('AUTHENTICATE DIGEST-MD5\r\n\0');
    const challenge = parseChallenge(Buffer.from(ch.subarray(8).toString().trim(), 'base64').toString());
    const resp = buildClientResponse({
      username: `bench${i}`,
      password: 'benchmark-pw',
      challenge,
      cnonce: String(Date.now()),
      digestUri: `tsp/127.0.0.1:${port}`,
    });
    expect(
      await c.request(`${Buffer.from(resp.text).toString('base64')}\r\n`),
      Buffer.from('rspauth=').toString('base64').slice(0, 8),
    );
    expect(await c.request(''), '200');
    await tunnel(c);
    return 6;
  });
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
  return `${name.padEnd(26)} ${store.padEnd(8)} ${f(rate)} ${f(r.roundTrips / r.seconds)} ${f(ceiling)} ${f(rate / ceiling, 3)} ${f(pct(r.latencies, 50), 2)} ${f(pct(r.latencies, 99), 2)} ${String(r.errors).padStart(6)}`;
}

async function main(): Promise<void> {
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
    const base = await drive(clients, async (c) => {
      await c.request('VERSION=2.0.2\r\n');
      return 1;
    });
    clients.forEach((c) => c.close());
    echo.kill('SIGKILL');

    // the broker, on each store dialect: SQLite, and PostgreSQL when a URL is given
    const pgUrl = process.env.BENCH_PG_URL ?? process.env.TSP_TEST_PG_URL;
    const rows: string[] = [];
    for (const dialect of pgUrl ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)) {
      const store = dialect === 'sqlite' ? { path: path.join(dir, 'broker.db') } : await freshPgDatabase(pgUrl!);
      if (store.drop) cleanups.push(store.drop);
      const r = await benchBroker(dir, dialect, store, procs);
      for (const [name, res, trips] of r) rows.push(row(`${name} (${trips} rtt)`, dialect, res, base, trips));
    }
    console.log(
      `tsp-broker control-plane benchmark: concurrency ${CONCURRENCY}, ${SECONDS} s measured after ${WARMUP_SECONDS} s warm-up, UDP on loopback${hasTaskset ? ', server on CPU 0, client on CPU 1' : ''}`,
    );
    console.log(
      `${'case'.padEnd(26)} ${'store'.padEnd(8)} ${'rate/s'.padStart(7)} ${'rtt/s'.padStart(7)} ${'ceiling'.padStart(7)} ${'of ceil'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(6)}`,
    );
    console.log(row('baseline: bare UDP echo', '-', base, base, 1));
    for (const r of rows) console.log(r);
    console.log(
      'ceiling = the baseline echo rate divided by the round trips a session takes (what this machine allows); of ceil = rate / ceiling; latency = whole session setup (one request for the baseline); errors = sessions that timed out (a lost datagram is never retransmitted here)',
    );
  } finally {
    stop();
    for (const c of cleanups) await c().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
