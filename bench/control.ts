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
import { writeActionRequest, writeCreateRequest } from '../src/protocol/xml.js';
import { buildClientResponse, parseChallenge } from '../src/protocol/sasl/digest-md5.js';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 1;
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
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      if (out.length < 100_000) out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}

const ECHO_SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(0, '127.0.0.1', () => console.log('port ' + s.address().port));
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-control-'));
  const procs: ChildProcess[] = [];
  const stop = () => procs.forEach((p) => p.kill('SIGKILL'));
  process.on('exit', stop);
  try {
    // baseline: bare request/reply
    const [ecmd, eargs] = pin(0, [process.execPath, '-e', ECHO_SERVER]);
    const echo = spawn(ecmd, eargs, { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(echo);
    const echoPort = await waitForPort(echo, /port (\d+)/);
    let clients = await Promise.all(
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

    // the broker
    const db = path.join(dir, 'broker.db');
    for (let i = 0; i < CONCURRENCY; i++) {
      const r = spawnSync(
        process.execPath,
        ['--import', TSX, CLI, 'user', 'add', `bench${i}`, '--password-stdin', '--db', db, '--realm', 'bench'],
        { input: 'benchmark-pw\n' },
      );
      if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
    }
    // every client here comes from 127.0.0.1: lift the per-source anonymous quotas that protect a real pool
    const cfgFile = path.join(dir, 'bench.json');
    writeFileSync(cfgFile, JSON.stringify({ limits: { anonymousPerSource: 100_000, anonymousPerPrefix24: 100_000 } }));
    const [bcmd, bargs] = pin(0, [
      process.execPath,
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
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
      '--db',
      db,
      '--realm',
      'bench',
      '--dataplane',
      'memory',
      '--no-admin',
      '--log-level',
      'info',
    ]);
    const broker = spawn(bcmd, bargs, { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(broker);
    const port = await waitForPort(broker, /"udp":(\d+)/);
    broker.stdout!.resume();
    clients = await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        const c = new Client(port);
        await c.open();
        return c;
      }),
    );
    const create = framedRequest(
      writeCreateRequest({ type: 'v6udpv4', clientIpv4: '127.0.0.1', keepaliveInterval: 30 }),
    );
    const accept = framedRequest(writeActionRequest('accept'));
    const expect = (b: Buffer, prefix: string) => {
      if (!b.subarray(8).toString('latin1').startsWith(prefix))
        throw new Error(`unexpected reply ${b.subarray(8, 60).toString()}`);
    };
    const anon = await drive(clients, async (c) => {
      c.resetSeq();
      expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
      expect(await c.request('AUTHENTICATE ANONYMOUS\r\n\0'), '200');
      expect(await c.request(create), 'Content-length');
      await c.request(accept);
      return 4;
    });
    const digest = await drive(clients, async (c, i) => {
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
      expect(await c.request(create), 'Content-length');
      await c.request(accept);
      return 6;
    });
    clients.forEach((c) => c.close());
    // a clean stop (SIGTERM) so the broker writes its profile when BENCH_PROFILE is set
    broker.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 5000).unref() && broker.once('exit', r));

    const rate = (r: Result) => r.count / r.seconds;
    const rt = (r: Result) => r.roundTrips / r.seconds;
    const row = (name: string, r: Result, unit: string) =>
      `${name.padEnd(30)} ${rate(r).toFixed(0).padStart(8)} ${unit.padEnd(11)} ${rt(r).toFixed(0).padStart(9)} ${(rt(r) / rt(base)).toFixed(3).padStart(7)} ${pct(r.latencies, 50).toFixed(2).padStart(8)} ${pct(r.latencies, 99).toFixed(2).padStart(8)} ${String(r.errors).padStart(6)}`;
    console.log(
      `tsp-broker control-plane benchmark: concurrency ${CONCURRENCY}, ${SECONDS} s measured after ${WARMUP_SECONDS} s warm-up, UDP on loopback${hasTaskset ? ', server on CPU 0, client on CPU 1' : ''}`,
    );
    console.log(
      `${'case'.padEnd(30)} ${'rate'.padStart(8)} ${''.padEnd(11)} ${'rtt/s'.padStart(9)} ${'vs base'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(6)}`,
    );
    console.log(row('baseline: bare UDP echo', base, 'req/s'));
    console.log(row('anonymous sessions (4 rtt)', anon, 'sessions/s'));
    console.log(row('DIGEST-MD5 sessions (6 rtt)', digest, 'sessions/s'));
    console.log(
      'vs base = round trips per second relative to the baseline; latency = whole session setup (one request for the baseline)',
    );
  } finally {
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
