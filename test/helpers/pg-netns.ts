/** @module test/helpers/pg-netns: a PostgreSQL server of a test's own inside one of its network namespaces (the
 *  machine's server listens on the host's loopback, which namespaces cannot reach): initdb into a temporary
 *  folder as the `postgres` user, a superuser `tsp` trusted from anywhere (the namespace is the test's alone),
 *  fsync off (a test database). Killed and removed by stop(), and by the topology's cleanup if the test dies. */

import { chownSync, mkdtempSync, readdirSync, rmSync, appendFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execCommand, runCommand, type Netns, type NetnsProcess } from './netns.js';

const START_TIMEOUT_MS = 30_000;

function pgBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b));
  return `/usr/lib/postgresql/${versions[versions.length - 1]}/bin/${name}`;
}

export interface NetnsPostgres {
  /** postgres://tsp@<address>:5432/postgres */
  url: string;
  process: NetnsProcess;
  /** One statement through psql inside the namespace; its unaligned output. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts PostgreSQL in `ns`, listening on `address` (one of the namespace's). */
export async function startNetnsPostgres(ns: Netns, address: string): Promise<NetnsPostgres> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-pg-'));
  chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  const uid = Number((await runCommand('id', ['-u', 'postgres'])).trim());
  const gid = Number((await runCommand('id', ['-g', 'postgres'])).trim());
  chownSync(dir, uid, gid);
  const init = await execCommand(
    'runuser',
    ['-u', 'postgres', '--', pgBin('initdb'), '-D', data, '-U', 'tsp', '-A', 'trust', '--no-sync', '-E', 'UTF8'],
    { timeoutMs: 60_000 },
  );
  if (init.code !== 0) throw new Error(`initdb failed: ${init.stdout}${init.stderr}`);
  appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n');
  const proc = ns.spawn('runuser', [
    '-u',
    'postgres',
    '--',
    pgBin('postgres'),
    '-D',
    data,
    '-c',
    `listen_addresses=${address}`,
    '-c',
    'port=5432',
    '-c',
    `unix_socket_directories=${dir}`,
    '-c',
    'fsync=off',
  ]);
  const query = async (sql: string) =>
    runCommand(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        'runuser',
        '-u',
        'postgres',
        '--',
        pgBin('psql'),
        '-h',
        address,
        '-U',
        'tsp',
        '-d',
        'postgres',
        '-tAc',
        sql,
      ],
      { timeoutMs: 10_000 },
    );
  const stop = async () => {
    await proc.kill(5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const r = await ns.exec(pgBin('pg_isready'), ['-h', address, '-p', '5432'], { timeoutMs: 5_000 });
    if (r.code === 0) break;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`postgres did not start: ${proc.stdout}${proc.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url: `postgres://tsp@${address}:5432/postgres`, process: proc, query, stop };
}
