/** @module bench/cluster: `npm run bench:cluster`. Set-up rate of a cluster (docs/cluster.md): two
 *  `tsp-broker serve` nodes on one PostgreSQL database, beside one node on the same database, in the same run.
 *  The same CONCURRENCY (50) UDP clients on loopback run anonymous and DIGEST-MD5 sessions (bench/control.ts's
 *  sessions): all against the one node, then half against each of the two. The ratio says how the set-up rate
 *  grows with nodes when the database is shared. Nodes are pinned to CPU 0 (and 1) when taskset exists; the
 *  clients and PostgreSQL share the machine with them, which a 2-core machine makes visible (the output says
 *  the core count). Needs BENCH_PG_URL or TSP_TEST_PG_URL: a server we may create a database on. */

import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openPostgresStore } from '../src/store/open.js';
import { deriveCredentials } from '../src/broker/credentials.js';
import { hasTaskset, pin, sessionScripts, waitForPort } from './serve.js';
import { CONCURRENCY, Client, SECONDS, drive, freshPgDatabase, pct, type Result } from './session-load.js';

const TSX = import.meta.resolve('tsx');
const CLI = path.resolve('src/cli/tsp-broker.ts');
const REALM = 'bench';

async function startNode(url: string, name: string, cpu: number, procs: ChildProcess[]): Promise<number> {
  // every client comes from 127.0.0.1: lift the per-source anonymous quotas that protect a real pool
  const cfgFile = path.join(os.tmpdir(), `bench-cluster-${process.pid}-${name}.json`);
  writeFileSync(cfgFile, JSON.stringify({ limits: { anonymousPerSource: 100_000, anonymousPerPrefix24: 100_000 } }));
  const argv = [
    process.execPath,
    '--import',
    TSX,
    CLI,
    'serve',
    '--config',
    cfgFile,
    '--db-url',
    url,
    '--node-id',
    name,
    '--listen',
    '127.0.0.1',
    '--port',
    '0',
    '--dataplane',
    'memory',
    '--no-admin',
    '--realm',
    REALM,
    '--log-level',
    'info',
  ];
  const [cmd, args] = pin(cpu % os.cpus().length, argv);
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  p.once('exit', () => rmSync(cfgFile, { force: true }));
  procs.push(p);
  return waitForPort(p, /"udp":(\d+)/);
}

/** Runs one kind of session on every client, each client against the port it is given. */
async function sessions(ports: number[], kind: 'anonymous' | 'digest'): Promise<Result> {
  const clients = await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      const c = new Client(ports[i % ports.length]!);
      await c.open();
      return c;
    }),
  );
  try {
    return await drive(clients, sessionScripts()[kind]);
  } finally {
    clients.forEach((c) => c.close());
  }
}

async function main(): Promise<void> {
  const pgUrl = process.env.BENCH_PG_URL ?? process.env.TSP_TEST_PG_URL;
  if (!pgUrl) {
    console.error(
      'bench:cluster needs PostgreSQL: set BENCH_PG_URL (or TSP_TEST_PG_URL) to a server we may create a database on',
    );
    process.exit(2);
  }
  const procs: ChildProcess[] = [];
  process.on('exit', () => procs.forEach((p) => p.kill('SIGKILL')));
  const db = await freshPgDatabase(pgUrl);
  try {
    const url = (db as { url: string }).url;
    const store = await openPostgresStore({ url });
    try {
      for (let i = 0; i < CONCURRENCY; i++)
        await store.createAccount({
          username: `bench${i}`,
          role: 'user',
          ...(await deriveCredentials(`bench${i}`, 'benchmark-pw', REALM)),
        });
    } finally {
      await store.close();
    }
    const one = await startNode(url, 'n1', 0, procs);
    const rows: [string, string, Result, number][] = [];
    for (const kind of ['anonymous', 'digest'] as const) rows.push([kind, '1 node', await sessions([one], kind), 1]);
    const two = await startNode(url, 'n2', 1, procs);
    for (const kind of ['anonymous', 'digest'] as const) {
      const r = await sessions([one, two], kind);
      const single = rows.find((x) => x[0] === kind && x[1] === '1 node')![2];
      rows.push([kind, '2 nodes', r, r.count / single.count]);
    }
    console.log(
      `tsp-broker cluster benchmark: ${CONCURRENCY} UDP clients on loopback, ${SECONDS} s measured per row, nodes on PostgreSQL (one database), ${os.cpus().length} CPUs${hasTaskset ? ', node n1 on CPU 0, n2 on CPU 1' : ''}`,
    );
    console.log(
      `${'sessions'.padEnd(12)} ${'nodes'.padEnd(8)} ${'rate/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(6)} ${'vs 1 node'.padStart(9)}`,
    );
    for (const [kind, nodes, r, ratio] of rows)
      console.log(
        `${(kind === 'digest' ? 'DIGEST-MD5' : kind).padEnd(12)} ${nodes.padEnd(8)} ${(r.count / r.seconds).toFixed(0).padStart(7)} ${pct(r.latencies, 50).toFixed(2).padStart(7)} ${pct(r.latencies, 99).toFixed(2).padStart(7)} ${String(r.errors).padStart(6)} ${ratio.toFixed(2).padStart(9)}`,
      );
    console.log(
      "vs 1 node = the two nodes' sessions per second over the single node's, on the same database in the same run",
    );
  } finally {
    procs.forEach((p) => p.kill('SIGKILL'));
    await db.drop?.().catch(() => undefined);
  }
}

await main();
