/** @module bench/session-load: what the control-plane benchmarks share (bench/control.ts, bench/cluster.ts):
 *  TSP clients over UDP on loopback doing strict request/reply, the loop that runs them for a measured window
 *  after a warm-up, percentiles, and a PostgreSQL database of the run's own. */

import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

export const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
export const WARMUP_SECONDS = 1;

/** One client socket doing strict request/reply by sequence number. */
export class Client {
  readonly s = dgram.createSocket('udp4');
  private seq = 0xf0;
  private pending: ((b: Buffer) => void) | undefined;
  private want = -1;
  /** The round trips of the session under way, in ms (drive() starts each session with it empty). */
  readonly tripTimes: number[] = [];
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
    const sent = performance.now();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('request timed out')), timeoutMs);
      this.pending = (b) => {
        clearTimeout(t);
        this.tripTimes.push(performance.now() - sent);
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

export interface Result {
  count: number;
  roundTrips: number;
  seconds: number;
  latencies: number[];
  /** Each round trip's latency, by its place in the session (0: VERSION), over the measured sessions. */
  trips: number[][];
  errors: number;
  /** CPU seconds the server process used in the measured window (all its threads), when a pid was given. */
  cpuSeconds?: number;
}

/** CPU seconds (user + system, every thread) a process has used so far, from /proc; NaN when it cannot tell. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] and [12] are utime and stime (the 14th and 15th of the line), in clock ticks
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** Runs `once` on every client in a loop for the measured window after a warm-up (`window`: other lengths than
 *  BENCH_SECONDS and WARMUP_SECONDS, in seconds). */
export async function drive(
  clients: Client[],
  once: (c: Client, i: number) => Promise<number>,
  serverPid?: number,
  window: { warmup: number; seconds: number } = { warmup: WARMUP_SECONDS, seconds: SECONDS },
): Promise<Result> {
  const start = performance.now();
  const measureFrom = start + window.warmup * 1000;
  const end = measureFrom + window.seconds * 1000;
  const r: Result = { count: 0, roundTrips: 0, seconds: window.seconds, latencies: [], trips: [], errors: 0 };
  let cpuFrom = NaN;
  const sampleCpu = () => serverPid !== undefined && (r.cpuSeconds ??= processCpuSeconds(serverPid) - cpuFrom);
  if (serverPid !== undefined) {
    setTimeout(() => (cpuFrom = processCpuSeconds(serverPid)), Math.max(0, measureFrom - performance.now()));
    setTimeout(sampleCpu, Math.max(0, end - performance.now()));
  }
  await Promise.all(
    clients.map(async (c, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        c.tripTimes.length = 0;
        try {
          const trips = await once(c, i);
          const t1 = performance.now();
          if (t0 >= measureFrom && t1 <= end) {
            r.count++;
            r.roundTrips += trips;
            r.latencies.push(t1 - t0);
            c.tripTimes.forEach((ms, k) => (r.trips[k] ??= []).push(ms));
          }
        } catch {
          r.errors++;
          c.resetSeq();
        }
      }
    }),
  );
  sampleCpu(); // in case the timer has not run yet
  return r;
}

export function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export type StoreChoice = { path: string; drop?: undefined } | { url: string; drop: () => Promise<void> };

/** A database of its own on the PostgreSQL server `url` names, dropped after the run. */
export async function freshPgDatabase(url: string): Promise<StoreChoice> {
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
