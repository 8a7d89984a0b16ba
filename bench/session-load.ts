/** @module bench/session-load: what the control-plane benchmarks share (bench/control.ts, bench/cluster.ts):
 *  TSP clients over UDP on loopback doing strict request/reply, the loop that runs them for a measured window
 *  after a warm-up, percentiles, and a PostgreSQL database of the run's own. */

import dgram from 'node:dgram';

export const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
export const WARMUP_SECONDS = 1;

/** One client socket doing strict request/reply by sequence number. */
export class Client {
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

export interface Result {
  count: number;
  roundTrips: number;
  seconds: number;
  latencies: number[];
  errors: number;
}

/** Runs `once` on every client in a loop for the measured window after a warm-up. */
export async function drive(clients: Client[], once: (c: Client, i: number) => Promise<number>): Promise<Result> {
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
