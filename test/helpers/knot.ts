/** A real authoritative DNS server for tests: Knot DNS (Debian's `knot`) on 127.0.0.1 and a free port, serving
 *  one zone that takes TSIG-signed dynamic updates, and `kdig` (Debian's `knot-dnsutils`) to look at it.
 *  The server, its configuration and its zone files live in a temporary folder removed on stop(). */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execCommand } from './netns.js';

export const KNOTD = '/usr/sbin/knotd';
export const KDIG = '/usr/bin/kdig';

export function haveKnot(): boolean {
  return existsSync(KNOTD) && existsSync(KDIG);
}

export interface KnotOptions {
  zone: string;
  key: { name: string; algorithm: string; secret: string };
  /** Reuse a port (a restarted server). */
  port?: number;
}

export interface Knot {
  port: number;
  /** The NS targets at `name` (answer or referral), lower-case without the trailing dot, sorted. */
  ns(name: string): Promise<string[]>;
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function configText(dir: string, port: number, o: KnotOptions): string {
  return [
    'server:',
    `  rundir: "${dir}"`,
    `  listen: 127.0.0.1@${port}`,
    'log:',
    '  - target: stderr',
    '    any: info',
    'database:',
    `  storage: "${dir}"`,
    'key:',
    `  - id: ${o.key.name}`,
    `    algorithm: ${o.key.algorithm}`,
    `    secret: ${o.key.secret}`,
    'acl:',
    '  - id: updates',
    `    key: ${o.key.name}`,
    '    action: update',
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    'zone:',
    `  - domain: ${o.zone}`,
    '    file: "zone.txt"',
    '    acl: updates',
    '',
  ].join('\n');
}

export async function startKnot(o: KnotOptions): Promise<Knot> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-knot-'));
  const port = o.port ?? (await freePort());
  writeFileSync(path.join(dir, 'knot.conf'), configText(dir, port, o));
  writeFileSync(
    path.join(dir, 'zone.txt'),
    [
      `$ORIGIN ${o.zone}.`,
      '$TTL 3600',
      '@ SOA ns.example.net. hostmaster.example.net. 1 3600 900 604800 300',
      '@ NS ns.example.net.',
      '',
    ].join('\n'),
  );
  let out = '';
  const child: ChildProcess = spawn(KNOTD, ['-c', path.join(dir, 'knot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const dig = (name: string, type: string) =>
    execCommand(KDIG, ['@127.0.0.1', '-p', String(port), name, type, '+norec', '+noall', '+answer', '+authority'], {
      timeoutMs: 5000,
    });
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  // ready when it answers for its zone: at most 100 tries, 100 ms apart
  for (let i = 0; ; i++) {
    const r = await dig(o.zone, 'SOA');
    if (r.code === 0 && /\sSOA\s/.test(r.stdout)) break;
    if (i >= 100 || child.exitCode !== null) {
      await stop();
      throw new Error(`knotd did not start: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    output: () => out,
    stop,
    async ns(name) {
      const r = await dig(name, 'NS');
      if (r.code !== 0) throw new Error(`kdig failed: ${r.stderr}`);
      return r.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length >= 5 && f[3] === 'NS' && f[0]!.toLowerCase().replace(/\.$/, '') === name)
        .map((f) => f[4]!.toLowerCase().replace(/\.$/, ''))
        .sort();
    },
  };
}
