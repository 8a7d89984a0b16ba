/** @module bench/scale: `npm run bench:scale`. One broker process holding many tunnels, on loopback:
 *   - RSS of `tsp-broker serve` (MemoryDataPlane, SQLite) with N live tunnels, beside the same process with none;
 *   - restore: after kill -9, how long a new process takes from spawn until every tunnel is back in the data
 *     plane (the 'restored live tunnels' log line) and it listens, beside the same for an empty store;
 *   - sweep CPU: the process's CPU share over SETTLE_S seconds with N idle tunnels (the expiry sweep and counter
 *     persistence run every 5 s), beside the same with none;
 *   - reconnect storm: STORM distinct clients (distinct UDP source ports, at most STORM_SOCKETS open at once)
 *     each run a whole anonymous session; how long until all are served, and how many failed. Bounded: each
 *     session has 10 s, the storm STORM_LIMIT_S.
 *  The tunnels are written straight into the store (the state a broker leaves behind), so the set-up rate does
 *  not bound this benchmark; bench:control measures that. Sizes: SCALE_SIZES (default "10000,100000"); storm size
 *  SCALE_STORM (default: as many as the tunnels). The broker runs from dist/ (built first), as installed. */

import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSqliteStore } from '../src/store/sqlite.js';
import { buildDist, waitForOutput } from './output.js';
import { processCpuSeconds } from './session-load.js';
import { framedRequest } from '../src/protocol/framing/content-length.js';
import { writeActionRequest, writeCreateRequest } from '../src/protocol/request-writer.js';

const SIZES = (process.env.SCALE_SIZES ?? '10000,100000').split(',').map(Number);
const SETTLE_S = Number(process.env.SCALE_SETTLE_S ?? 20);
const STORM_SOCKETS = Number(process.env.SCALE_STORM_SOCKETS ?? 200);
const STORM_LIMIT_S = Number(process.env.SCALE_STORM_LIMIT_S ?? 120);
// the compiled package, as an installed broker runs (built below), not TypeScript through tsx
const CLI = path.resolve('bin/tsp-broker.js');

/** The documentation ranges (RFC 5737): seeded clients are spread over their 768 addresses. */
const CLIENT_NETS = ['192.0.2', '198.51.100', '203.0.113'];

/** Writes `n` established anonymous v6udpv4 tunnels: clients in the documentation ranges (address i mod 768,
 *  port 1024 + i div 768), link /64s in 2001:db8:0::/33, outside the pool the storm draws from. */
async function seed(file: string, n: number): Promise<void> {
  const store = await openSqliteStore({ file });
  const now = Date.now();
  for (let done = 0; done < n;) {
    const chunk = Math.min(2000, n - done);
    await store.batch(async (tx) => {
      for (let i = done; i < done + chunk; i++) {
        const hi = (i >> 16) & 0xffff;
        const lo = i & 0xffff;
        const t = await tx.createTunnel(
          {
            accountId: null,
            leaseId: `seed-${i}`,
            type: 'v6udpv4',
            transport: 'udp',
            clientIpv4: `${CLIENT_NETS[(i % 768) >> 8]}.${i % 256}`,
            clientPort: 1024 + Math.floor(i / 768),
            serverIpv4: '192.0.2.1',
            serverIpv6: `2001:db8:${hi.toString(16)}:${lo.toString(16)}::1`,
            clientIpv6: `2001:db8:${hi.toString(16)}:${lo.toString(16)}::2`,
            prefix: null,
            prefixLen: null,
            keepaliveInterval: 30,
            lifetimeS: 604800,
          },
          now,
        );
        await tx.establishTunnel(t.id, now);
      }
    });
    done += chunk;
  }
  await store.close();
}

interface Running {
  proc: ChildProcess;
  port: number;
  /** ms from spawn to listening, and the restored count the log said. */
  startMs: number;
  restored: number;
}

async function serve(dir: string, db: string): Promise<Running> {
  const cfg = path.join(dir, 'scale.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      limits: {
        anonymousPerSource: 1_000_000,
        anonymousPerPrefix24: 1_000_000,
        halfOpenSessions: 100_000,
        halfOpenPerSource: 100_000, // every storm client is 127.0.0.1
      },
      pools: { link: '2001:db8:8000::/33', accountReserve: 0 },
      store: { path: db },
    }),
  );
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [
      ...(process.env.SCALE_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SCALE_PROFILE}`] : []),
      CLI,
      'serve',
      '--config',
      cfg,
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--dataplane',
      'memory',
      // SCALE_ADMIN=1: with the admin server (its traffic meter) on, as a default install runs
      ...(process.env.SCALE_ADMIN ? ['--admin-port', '0'] : ['--no-admin']),
      '--log-format',
      'json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const { match, out } = await waitForOutput(proc, /"udp":(\d+)/, 120_000);
  const restored = Number(/"tunnels":(\d+)[^\n]*restored live tunnels/.exec(out)?.[1] ?? 0);
  return { proc, port: Number(match[1]), startMs: performance.now() - t0, restored };
}

/** Resident memory now (VmRSS), or the most it has been since the process started (VmHWM). */
function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function kill9(p: ChildProcess): Promise<void> {
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

/** CPU share of `pid` over `seconds`, in percent of one core. */
async function cpuShare(pid: number, seconds: number): Promise<number> {
  const c0 = processCpuSeconds(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((processCpuSeconds(pid) - c0) / seconds) * 100;
}

/** `total` anonymous sessions, each from a fresh UDP socket (a distinct source port), `width` at a time. */
async function storm(
  port: number,
  total: number,
  width: number,
): Promise<{ seconds: number; ok: number; failed: number }> {
  const create = framedRequest(writeCreateRequest({ type: 'v6udpv4', clientIpv4: '127.0.0.1', keepaliveInterval: 30 }));
  const accept = framedRequest(writeActionRequest('accept'));
  const deadline = performance.now() + STORM_LIMIT_S * 1000;
  let next = 0;
  let ok = 0;
  let failed = 0;
  const one = async (): Promise<boolean> => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    let seq = 0xf0;
    const ask = (body: Buffer | string) =>
      new Promise<Buffer>((resolve, reject) => {
        const h = Buffer.alloc(8);
        const want = (0xf0000000 | seq++) >>> 0;
        h.writeUInt32BE(want, 0);
        // one retransmission a second, as gogoc does, within the session's 10 s
        const send = () => s.send(Buffer.concat([h, Buffer.from(body as string, 'latin1')]), port, '127.0.0.1');
        const again = setInterval(send, 1000);
        const t = setTimeout(() => {
          clearInterval(again);
          reject(new Error('timeout'));
        }, 10_000);
        s.removeAllListeners('message');
        s.on('message', (m) => {
          if (m.length >= 8 && m.readUInt32BE(0) === want) {
            clearTimeout(t);
            clearInterval(again);
            resolve(m);
          }
        });
        send();
      });
    try {
      await ask('VERSION=2.0.2\r\n');
      await ask('AUTHENTICATE ANONYMOUS\r\n\0');
      const offer = await ask(create);
      if (!offer.subarray(8).toString('latin1').startsWith('Content-length')) return false;
      await ask(accept);
      return true;
    } catch {
      return false;
    } finally {
      s.close();
    }
  };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < total && performance.now() < deadline) {
        next++;
        if (await one()) ok++;
        else failed++;
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, ok, failed };
}

async function main(): Promise<void> {
  buildDist();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-scale-'));
  const procs: ChildProcess[] = [];
  process.on('exit', () => procs.forEach((p) => p.kill('SIGKILL')));
  const lines: string[] = [];
  try {
    // the empty baseline, run beside the loaded cases
    const emptyDb = path.join(dir, 'empty.db');
    await seed(emptyDb, 0);
    const empty = await serve(dir, emptyDb);
    procs.push(empty.proc);
    await new Promise((r) => setTimeout(r, 2000));
    const emptyRss = rssMb(empty.proc.pid!);
    const emptyCpu = await cpuShare(empty.proc.pid!, SETTLE_S);
    await kill9(empty.proc);
    const emptyRestart = await serve(dir, emptyDb);
    procs.push(emptyRestart.proc);
    await kill9(emptyRestart.proc);
    lines.push(
      row(
        '0 (baseline)',
        emptyRss,
        emptyRestart.startMs,
        emptyCpu,
        undefined,
        emptyRestart.startMs,
        emptyRss,
        emptyCpu,
      ),
    );

    for (const n of SIZES) {
      const db = path.join(dir, `scale-${n}.db`);
      const s0 = performance.now();
      await seed(db, n);
      const seedS = (performance.now() - s0) / 1000;
      const first = await serve(dir, db);
      procs.push(first.proc);
      if (first.restored !== n) throw new Error(`restored ${first.restored} of ${n}`);
      await new Promise((r) => setTimeout(r, 2000));
      const rss = rssMb(first.proc.pid!);
      const cpu = await cpuShare(first.proc.pid!, SETTLE_S);
      await kill9(first.proc);
      const again = await serve(dir, db);
      procs.push(again.proc);
      if (again.restored !== n) throw new Error(`after kill -9: restored ${again.restored} of ${n}`);
      const restorePeak = rssMb(again.proc.pid!, 'VmHWM');
      const stormN = Math.min(n, Number(process.env.SCALE_STORM ?? n));
      const cpu0 = processCpuSeconds(again.proc.pid!);
      const st = await storm(again.port, stormN, STORM_SOCKETS);
      const stormCpuUs = ((processCpuSeconds(again.proc.pid!) - cpu0) / Math.max(1, st.ok)) * 1e6;
      const rssAfter = rssMb(again.proc.pid!);
      if (process.env.SCALE_PROFILE) {
        // a clean stop, so the profile of the storm is written
        const gone = new Promise((r) => again.proc.once('exit', r));
        again.proc.kill('SIGTERM');
        await gone;
      } else await kill9(again.proc);
      lines.push(
        row(String(n), rss, again.startMs, cpu, st, emptyRestart.startMs, emptyRss, emptyCpu) +
          `  (seeded in ${seedS.toFixed(1)} s; peak RSS of the restore ${restorePeak.toFixed(0)} MB; RSS after the storm ${rssAfter.toFixed(0)} MB; broker CPU ${stormCpuUs.toFixed(0)} us a storm session)`,
      );
    }
  } finally {
    procs.forEach((p) => p.kill('SIGKILL'));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `tsp-broker scale benchmark: serve with MemoryDataPlane and SQLite on loopback; CPU over ${SETTLE_S} s idle; storm of anonymous sessions from distinct source ports, ${STORM_SOCKETS} at a time`,
  );
  console.log(
    `${'tunnels'.padEnd(14)} ${'RSS MB'.padStart(7)} ${'vs 0'.padStart(6)} ${'restart s'.padStart(9)} ${'vs 0'.padStart(6)} ${'idle CPU %'.padStart(10)} ${'vs 0'.padStart(6)} ${'storm'.padStart(16)} ${'storm s'.padStart(8)} ${'per s'.padStart(6)} failed`,
  );
  for (const l of lines) console.log(l);
  console.log(
    'restart = spawn after kill -9 until every stored tunnel is back in the data plane and TSP listens (includes the start-up of Node itself: see the baseline); vs 0 = difference from the empty store',
  );
}

function row(
  name: string,
  rss: number,
  restartMs: number,
  cpu: number,
  st: { seconds: number; ok: number; failed: number } | undefined,
  baseRestartMs: number,
  baseRss: number,
  baseCpu: number,
): string {
  const f = (x: number, w: number, d = 1) => x.toFixed(d).padStart(w);
  const storm = st ? `${st.ok + st.failed} sessions`.padStart(16) : '-'.padStart(16);
  return `${name.padEnd(14)} ${f(rss, 7, 0)} ${f(rss - baseRss, 6, 0)} ${f(restartMs / 1000, 9, 2)} ${f((restartMs - baseRestartMs) / 1000, 6, 2)} ${f(cpu, 10, 2)} ${f(cpu - baseCpu, 6, 2)} ${storm} ${st ? f(st.seconds, 8) : '-'.padStart(8)} ${st ? f(st.ok / st.seconds, 6, 0) : '-'.padStart(6)} ${st ? st.failed : '-'}`;
}

await main();
