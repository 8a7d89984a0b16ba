/** `npm run demo`: tsp-broker and tspc end to end on this machine, in four network namespaces, then gone.
 *
 *    client 192.0.2.2 ── nat (masquerade to 203.0.113.2) ── broker 203.0.113.1 ── internet host 2001:db8:100::2
 *      tspc (anonymous, v6anyv4)                             tsp-broker serve (embedded defaults, native data plane)
 *
 *  Starts the broker with its embedded defaults (only the pools are set, to documentation prefixes), starts
 *  tspc behind the NAT, pings through the tunnel both ways, shows `tspc status`, and removes every process,
 *  namespace and file it made, also on failure or Ctrl-C. Needs root (namespaces, TUN devices). Only
 *  documentation address ranges are used. */

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Topology, type Netns, type NetnsProcess } from '../test/helpers/netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BROKER = path.join(ROOT, 'bin/tsp-broker.js');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const INET_HOST = '2001:db8:100::2';
const LINK_POOL = '2001:db8:f00::/48';
const DELEGATION_POOL = '2001:db8:f000::/40';
const WAIT_MS = 30_000;

const say = (line: string) => console.log(line);

async function waitFor(p: NetnsProcess, text: string, what: string): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const line = p.stdout.split('\n').find((l) => l.includes(text));
    if (line) return line;
    if (p.child.exitCode !== null) throw new Error(`${what} exited ${p.child.exitCode}:\n${p.stdout}${p.stderr}`);
    if (Date.now() > deadline) throw new Error(`${what}: nothing after ${WAIT_MS / 1000} s:\n${p.stdout}${p.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** ping6 summary as "3/3 replies, avg 0.08 ms". */
async function ping(from: Netns, to: string): Promise<string> {
  const r = await from.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', to], { timeoutMs: 15_000 });
  const got = /(\d+) received/.exec(r.stdout)?.[1] ?? '0';
  const avg = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
  return `${got}/3 replies${avg ? `, avg ${avg} ms` : ''}`;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/net/tun')) {
    console.error('npm run demo needs root and /dev/net/tun (it creates network namespaces and TUN devices)');
    return 1;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-demo-'));
  const topo = await Topology.create();
  try {
    const client = await topo.namespace('client');
    const nat = await topo.namespace('nat');
    const broker = await topo.namespace('broker');
    const inet = await topo.namespace('inet');
    await topo.link(client, ['192.0.2.2/24'], nat, ['192.0.2.1/24']);
    await topo.link(nat, ['203.0.113.2/24'], broker, ['203.0.113.1/24']);
    await topo.link(broker, ['2001:db8:100::1/64'], inet, [`${INET_HOST}/64`]);
    await client.ip('route', 'add', 'default', 'via', '192.0.2.1');
    await inet.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:100::1');
    await nat.sysctl('net.ipv4.ip_forward', 1);
    await nat.nft(
      'table ip nat {\n  chain postrouting { type nat hook postrouting priority 100; oifname "to-broker" masquerade; }\n}\n',
    );
    say('tsp-broker demo: four network namespaces');
    say('  client 192.0.2.2 -- NAT (masquerade to 203.0.113.2) -- broker 203.0.113.1 -- internet host ' + INET_HOST);

    const b = broker.spawn(process.execPath, [
      BROKER,
      'serve',
      '--dataplane',
      'native',
      '--link-pool',
      LINK_POOL,
      '--delegation-pool',
      DELEGATION_POOL,
      '--db',
      path.join(dir, 'broker.db'),
      '--no-admin',
    ]);
    await waitFor(b, 'tsp-broker listening', 'tsp-broker');
    say(
      `1. tsp-broker serve is up with its embedded defaults: UDP and TCP 3653, pools ${LINK_POOL} and ${DELEGATION_POOL}`,
    );

    const statusFile = path.join(dir, 'tspc.json');
    const t = client.spawn(process.execPath, [TSPC, '--server', '203.0.113.1', '--status-file', statusFile]);
    t.child.stdin?.end();
    const up = await waitFor(t, 'tunnel up:', 'tspc');
    const m = /tunnel up: (\S+) on (\S+), (\S+) <-> (\S+?)(?: |,|$)/.exec(up)!;
    const [type, tun, address, server] = [m[1]!, m[2]!, m[3]!, m[4]!];
    say(`2. tspc behind the NAT asked for v6anyv4 (anonymous); the broker saw the NAT and offered ${type}:`);
    say(`   ${tun} in the client namespace has ${address}, the broker's end is ${server}`);
    say(`3. ping6 client -> internet host ${INET_HOST}: ${await ping(client, INET_HOST)}`);
    say(`4. ping6 internet host -> client ${address}: ${await ping(inet, address)}`);
    await new Promise((r) => setTimeout(r, 2_500)); // tspc refreshes its status file every 2 s
    const status = await client.exec(process.execPath, [TSPC, 'status', '--status-file', statusFile]);
    say('5. tspc status:');
    for (const line of status.stdout.trim().split('\n')) say(`   ${line}`);
    t.child.kill('SIGTERM');
    await t.exited;
    const left = await client.exec('ip', ['-6', 'route', 'show', 'default']);
    say(
      `6. tspc stopped (SIGTERM): ${tun} and its default route are gone${left.stdout.trim() ? ' (NOT: ' + left.stdout.trim() + ')' : ''}`,
    );
    return 0;
  } catch (e) {
    console.error(`demo failed: ${(e as Error).message}`);
    return 1;
  } finally {
    await topo.cleanup();
    rmSync(dir, { recursive: true, force: true });
    say('Removed everything the demo made (processes, namespaces, files).');
  }
}

process.exitCode = await main();
