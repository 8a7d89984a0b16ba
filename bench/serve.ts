/** @module bench/serve: what bench/control.ts and bench/ab.ts share: a `tsp-broker serve` process started for a
 *  benchmark (its configuration, the accounts the logging-in cases use, pinned to CPU 0), and the sessions the
 *  clients run against it (anonymous, PLAIN, DIGEST-MD5; each returns its round trips). */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { framedRequest } from '../src/protocol/framing/content-length.js';
import { writeActionRequest, writeCreateRequest } from '../src/protocol/request-writer.js';
import { buildClientResponse, parseChallenge } from '../src/protocol/sasl/digest-md5.js';
import { encodePlain } from '../src/protocol/sasl/plain.js';
import { waitForOutput } from './output.js';
import { CONCURRENCY, type Client, type StoreChoice } from './session-load.js';

/** BENCH_LINK_MODE=shared-64 measures that pools.linkMode (a /126 per owner) instead of the default. */
const LINK_MODE = process.env.BENCH_LINK_MODE ?? 'per-account-64';

export const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
/** argv run on one CPU, when taskset exists. */
export const pin = (cpu: number, argv: string[]) =>
  (hasTaskset ? ['taskset', ['-c', String(cpu), ...argv]] : [argv[0]!, argv.slice(1)]) as [string, string[]];
/** The benchmark's own process (the clients) on CPU 1, the servers on CPU 0. */
export function pinClientsToCpu1(): void {
  if (hasTaskset) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)]);
}

export async function waitForPort(proc: ChildProcess, pattern: RegExp): Promise<number> {
  return Number((await waitForOutput(proc, pattern)).match[1]);
}

export interface ServeOptions {
  /** Where the configuration file goes; `name` tells it apart from another broker's there. */
  dir: string;
  name: string;
  store: StoreChoice;
  /** How to run the CLI: node's arguments before `serve` (a dist/ script, or tsx and a source file). */
  broker: string[];
  /** Make CONCURRENCY accounts bench0… (PLAIN and DIGEST-MD5 cases). */
  accounts: boolean;
  /** Extra node arguments (a CPU profile). */
  nodeArgs?: string[];
}

/** Starts `tsp-broker serve` on loopback (UDP port chosen by the kernel), pinned to CPU 0; resolves with the
 *  process and its UDP port once it listens. */
export async function startServe(o: ServeOptions): Promise<{ proc: ChildProcess; port: number }> {
  // every client here comes from 127.0.0.1: lift the per-source anonymous quotas that protect a real pool
  const cfgFile = path.join(o.dir, `bench-${o.name}.json`);
  writeFileSync(
    cfgFile,
    JSON.stringify({
      limits: { anonymousPerSource: 100_000, anonymousPerPrefix24: 100_000 },
      auth: { plain: true, realm: 'bench' },
      pools: { linkMode: LINK_MODE },
      store: 'url' in o.store ? { driver: 'postgres', url: o.store.url } : { driver: 'sqlite', path: o.store.path },
    }),
  );
  // each `user add` is a process and an argon2id hash
  for (let i = 0; i < (o.accounts ? CONCURRENCY : 0); i++) {
    const r = spawnSync(
      process.execPath,
      [...o.broker, 'user', 'add', `bench${i}`, '--password-stdin', '--config', cfgFile],
      { input: 'benchmark-pw\n' },
    );
    if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
  }
  const [cmd, args] = pin(0, [
    process.execPath,
    ...(o.nodeArgs ?? []),
    ...o.broker,
    'serve',
    '--config',
    cfgFile,
    '--listen',
    '127.0.0.1',
    '--port',
    '0',
    '--dataplane',
    process.env.BENCH_DATAPLANE ?? 'memory',
    '--no-admin',
    '--log-level',
    'info',
  ]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return { proc, port: await waitForPort(proc, /"udp":(\d+)/) };
}

/** One session of each kind, as a client runs it again and again against the broker at `port`. */
export function sessionScripts(): Record<'anonymous' | 'plain' | 'digest', (c: Client, i: number) => Promise<number>> {
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
  return {
    anonymous: async (c) => {
      c.resetSeq();
      expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
      expect(await c.request('AUTHENTICATE ANONYMOUS\r\n\0'), '200');
      await tunnel(c);
      return 4;
    },
    plain: async (c, i) => {
      c.resetSeq();
      expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
      await c.request('AUTHENTICATE PLAIN\r\n\0');
      expect(await c.request(encodePlain({ username: `bench${i}`, password: 'benchmark-pw' })), '200');
      await tunnel(c);
      return 5;
    },
    digest: async (c, i) => {
      c.resetSeq();
      expect(await c.request('VERSION=2.0.2\r\n'), 'CAPABILITY');
      const ch = await c.request('AUTHENTICATE DIGEST-MD5\r\n\0');
      const challenge = parseChallenge(Buffer.from(ch.subarray(8).toString().trim(), 'base64').toString());
      const resp = buildClientResponse({
        username: `bench${i}`,
        password: 'benchmark-pw',
        challenge,
        cnonce: String(Date.now()),
        digestUri: `tsp/127.0.0.1:${c.port}`,
      });
      expect(
        await c.request(`${Buffer.from(resp.text).toString('base64')}\r\n`),
        Buffer.from('rspauth=').toString('base64').slice(0, 8),
      );
      expect(await c.request(''), '200');
      await tunnel(c);
      return 6;
    },
  };
}
