/** BIRD 2 (Debian's `bird2`) for tests: a daemon in a test's network namespace with its own configuration file,
 *  control socket (`-s`) and pid file in a temporary folder, never the system's daemon or its files. The
 *  configurations are the ones docs/cluster.md shows, read from it, so the documentation stays true. */

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execCommand, type Netns, type NetnsProcess } from './netns.js';

export const BIRD = '/usr/sbin/bird';
export const BIRDC = '/usr/sbin/birdc';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const START_TIMEOUT_MS = 10_000;

export function haveBird(): boolean {
  return existsSync(BIRD) && existsSync(BIRDC);
}

/** The BIRD configuration in docs/cluster.md whose first line starts with `firstLine`. */
export function birdConfigFromDocs(firstLine: string): string {
  const doc = readFileSync(path.join(ROOT, 'docs/cluster.md'), 'utf8');
  const block = doc
    .split(/^```[a-z]*\n/m)
    .filter((_, i) => i % 2 === 1) // the insides of fenced blocks
    .map((b) => b.slice(0, b.indexOf('```')))
    .find((b) => b.startsWith(firstLine));
  if (block === undefined) throw new Error(`docs/cluster.md has no block starting "${firstLine}"`);
  return block;
}

export interface Bird {
  process: NetnsProcess;
  /** `birdc -s <socket> <args>`: its output (rejects unless it exits 0). */
  birdc(...args: string[]): Promise<string>;
  /** Whether the BGP protocol `name` is Established. */
  established(name: string): Promise<boolean>;
  /** Kills it (SIGKILL: no goodbye to its peers but what the kernel's socket close sends) and removes its
   *  folder. Idempotent. */
  kill(): Promise<void>;
}

/** Starts `bird -f` in `ns` with `config`; resolves when its control socket answers. The process is the
 *  topology's too (killed at its cleanup); the caller kills it (and removes its folder) with kill(). */
export async function startBird(ns: Netns, config: string): Promise<Bird> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-bird-'));
  const conf = path.join(dir, 'bird.conf');
  const socket = path.join(dir, 'bird.ctl');
  writeFileSync(conf, config);
  const proc = ns.spawn(BIRD, ['-f', '-c', conf, '-s', socket, '-P', path.join(dir, 'bird.pid')]);
  const birdc = async (...args: string[]) => {
    const r = await execCommand('ip', ['netns', 'exec', ns.name, BIRDC, '-s', socket, ...args], { timeoutMs: 5000 });
    if (r.code !== 0) throw new Error(`birdc ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const kill = async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const r = await birdc('show', 'status').catch(() => '');
    if (r.includes('Daemon is up')) break;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await kill();
      throw new Error(`bird did not start: ${proc.stdout}${proc.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    process: proc,
    birdc,
    established: async (name) => /\sEstablished/.test(await birdc('show', 'protocols', name).catch(() => '')),
    kill,
  };
}
