/** tspc end to end: the real `tspc` command (bin/tspc.js) in client namespaces against a real
 *  `tsp-broker serve` process on each data-plane driver (test/helpers/broker-lab.ts has the topology: clients
 *  behind a masquerading NAT, clients linked straight to the broker, an IPv6 host on the "internet"):
 *
 *    every mechanism x v6udpv4 over UDP behind the NAT; v6v4 over TCP and over UDP without NAT; v6anyv4 with
 *    and without NAT; router mode with a LAN host behind tspc; ping6 through each tunnel both ways; the hook's
 *    TSP_* variables on up and down; `tspc status`; nothing left behind after SIGTERM;
 *    recovery: the broker killed with SIGKILL and started again; the NAT's conntrack flushed; the NAT mapping
 *    changed (new port range): tspc comes back within its keepalive budget with the same addresses.
 *
 *  On ebpf (the TC programs before the addon) only cases whose packets the programs carry: v6udpv4 behind the NAT
 *  (one mechanism), router mode, the three recoveries. The rest is control plane, or direct links made after the
 *  broker started, whose traffic the programs leave to the addon (broker-paths.test.ts has v6v4 on them).
 *
 *  Keepalives are short (interval 2 s wished, the broker allows 1..10; echo timeout 2 s; 3 misses), so a dead
 *  tunnel is noticed in under 10 s. Every wait is bounded; the lab (processes, namespaces, files) is removed in
 *  after() and at process exit. Needs root and /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  canonical,
  eventuallyAsync,
  firstHost,
  labSkip,
  type LabClient,
  type LabDriver,
} from '../helpers/broker-lab.js';
import type { Netns, NetnsProcess } from '../helpers/netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const PASSWORD = 'correct horse battery';
const UP_TIMEOUT_MS = 25_000;

interface Up {
  type: string;
  tun: string;
  address: string;
  server: string;
  prefix?: string;
}

interface RunningTspc {
  proc: NetnsProcess;
  statusFile: string;
  hookOut: string;
  ns: Netns;
  /** The n-th "tunnel up" line (1-based), waited for. */
  up(n?: number): Promise<Up>;
  stop(): Promise<number | null>;
}

function parseUp(line: string): Up {
  const m = /tunnel up: (\S+) on (\S+), (\S+) <-> ([0-9a-f:]+)(?:, prefix (\S+))?/.exec(line);
  if (!m) throw new Error(`not a tunnel-up line: ${line}`);
  return {
    type: m[1]!,
    tun: m[2]!,
    address: canonical(m[3]!),
    server: canonical(m[4]!),
    ...(m[5] ? { prefix: m[5] } : {}),
  };
}

for (const driver of LAB_DRIVERS) tspcEndToEnd(driver);

function tspcEndToEnd(driver: LabDriver): void {
  describe(`tspc end to end (${driver})`, { skip: labSkip(driver) }, () => {
    /** A case of the control plane or of the addon's own paths: run once, on native (the header says why). */
    const nativeOnly = (name: string, fn: () => Promise<void>): void => {
      if (driver === 'native') void it(name, fn);
    };
    let lab: BrokerLab;
    let hook: string;
    let counter = 0;

    before(async () => {
      lab = await BrokerLab.create({ dataplane: { driver } });
      for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'rita', 'kim', 'nat1', 'nat2'])
        await lab.addUser(u, PASSWORD);
      hook = path.join(lab.dir, 'hook.sh');
      writeFileSync(hook, '#!/bin/sh\nenv | grep "^TSP_" | sort > "$HOOK_OUT.$TSP_OPERATION"\n', { mode: 0o755 });
      await lab.startBroker();
    });

    after(async () => {
      await lab?.cleanup();
    });

    /** Starts tspc in the client's namespace with short keepalives, a status file and the hook. */
    function tspc(client: LabClient, args: string[], password?: string): RunningTspc {
      const n = ++counter;
      const statusFile = path.join(lab.dir, `tspc-${n}.status.json`);
      const hookOut = path.join(lab.dir, `hook-${n}`);
      const proc = client.ns.spawn(
        process.execPath,
        [
          TSPC,
          '--server',
          client.server,
          '--keepalive-interval',
          '2',
          '--keepalive-timeout',
          '2',
          '--retry-delay',
          '1',
          '--retry-delay-max',
          '2',
          '--status-file',
          statusFile,
          '--hook',
          hook,
          ...args,
        ],
        { env: { ...process.env, HOOK_OUT: hookOut } },
      );
      // --password-stdin reads one line; without it stdin is just closed
      proc.child.stdin?.end(password === undefined ? '' : `${password}\n`);
      return {
        proc,
        statusFile,
        hookOut,
        ns: client.ns,
        async up(count = 1) {
          const deadline = Date.now() + UP_TIMEOUT_MS;
          for (;;) {
            const lines = proc.stdout.split('\n').filter((l) => l.includes('tunnel up:'));
            if (lines.length >= count) return parseUp(lines[count - 1]!);
            if (proc.child.exitCode !== null)
              throw new Error(`tspc exited ${proc.child.exitCode}: ${proc.stdout}${proc.stderr}`);
            if (Date.now() > deadline)
              throw new Error(`tspc not up after ${UP_TIMEOUT_MS} ms: ${proc.stdout}${proc.stderr}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        },
        async stop() {
          proc.child.kill('SIGTERM');
          const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
          const code = await proc.exited;
          clearTimeout(timer);
          return code;
        },
      };
    }

    /** What must be gone after tspc exits: the TUN, routes over it, the default route it added. */
    async function assertNothingLeft(ns: Netns, tun: string): Promise<void> {
      const links = await ns.ip('-o', 'link', 'show');
      assert.doesNotMatch(links, new RegExp(`\\b${tun}\\b`), 'the TUN device is gone');
      const routes = await ns.ip('-6', 'route', 'show');
      assert.doesNotMatch(routes, new RegExp(`dev ${tun}\\b`), 'no route over it');
      assert.doesNotMatch(routes, /^default/m, 'no IPv6 default route left');
      assert.doesNotMatch(routes, /unreachable/, 'no unreachable prefix route left');
    }

    /** Up, ping both ways, hook on up, status, stop, hook on down, nothing left. */
    async function roundTrip(
      client: LabClient,
      args: string[],
      want: { type: string; transport: string },
    ): Promise<Up> {
      const t = tspc(client, args, args.includes('--password-stdin') ? PASSWORD : undefined);
      const up = await t.up();
      assert.equal(up.type, want.type, 'tunnel type');
      assert.match(t.proc.stdout, new RegExp(`transport=${want.transport}`));
      assert.equal(await lab.ping(client.ns, INET_HOST), true, 'client -> internet through the tunnel');
      assert.equal(await lab.ping(lab.inet, up.address), true, 'internet -> client through the tunnel');

      const env = Object.fromEntries(
        readFileSync(`${t.hookOut}.TSP_TUNNEL_CREATION`, 'utf8')
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      assert.equal(env.TSP_OPERATION, 'TSP_TUNNEL_CREATION');
      assert.equal(env.TSP_TUNNEL_MODE, want.type);
      assert.equal(env.TSP_TUNNEL_INTERFACE, up.tun);
      assert.equal(canonical(env.TSP_CLIENT_ADDRESS_IPV6!), up.address);
      assert.equal(canonical(env.TSP_SERVER_ADDRESS_IPV6!), up.server);
      assert.equal(env.TSP_SERVER_ADDRESS_IPV4, client.server);
      assert.equal(env.TSP_TUNNEL_PREFIXLEN, '128');
      assert.equal(env.TSP_HOST_TYPE, args.includes('--router') ? 'router' : 'host');
      if (want.type === 'v6v4') assert.equal(env.TSP_CLIENT_ADDRESS_IPV4, client.ipv4, 'no NAT: its own address');
      else if (client.server !== client.ipv4) assert.notEqual(env.TSP_CLIENT_ADDRESS_IPV4, client.ipv4, 'NAT address');

      let shown = '';
      await eventuallyAsync(async () => {
        const r = await client.ns.exec(process.execPath, [TSPC, 'status', '--status-file', t.statusFile]);
        shown = `${r.code} ${r.stdout}${r.stderr}`;
        return r.code === 0 && r.stdout.includes(up.address) && /last RTT [\d.]+ ms/.test(r.stdout);
      }, 'tspc status to show the tunnel and a keepalive RTT').catch((e: Error) => {
        throw new Error(`${e.message}; tspc status said: ${shown}; tspc: ${t.proc.stdout}${t.proc.stderr}`);
      });

      assert.equal(await t.stop(), 0, 'SIGTERM: clean exit');
      const down = readFileSync(`${t.hookOut}.TSP_TUNNEL_TEARDOWN`, 'utf8');
      assert.match(down, /^TSP_OPERATION=TSP_TUNNEL_TEARDOWN$/m);
      assert.match(down, new RegExp(`^TSP_TUNNEL_INTERFACE=${up.tun}$`, 'm'));
      await assertNothingLeft(client.ns, up.tun);
      const status = JSON.parse(readFileSync(t.statusFile, 'utf8')) as { state: string };
      assert.equal(status.state, 'stopped');
      return up;
    }

    const mechanisms = [
      ['anonymous', []],
      ['plain', ['-u', 'alice', '--password-stdin']],
      ['digest-md5', ['-u', 'bob', '--password-stdin']],
      ['any', ['-u', 'carol', '--password-stdin']],
    ] as const;
    for (const [auth, extra] of mechanisms) {
      if (auth !== 'anonymous' && driver !== 'native') continue; // mechanisms differ in the control plane only
      it(`v6udpv4 over UDP behind the NAT, auth ${auth}`, async () => {
        const client = await lab.natClient(`c-${auth.slice(0, 6)}`);
        await roundTrip(client, ['-m', 'v6udpv4', '-a', auth, ...extra], { type: 'v6udpv4', transport: 'udp' });
      });
    }

    nativeOnly('v6v4 over TCP without NAT (DIGEST-MD5)', async () => {
      const client = await lab.directClient('c-v6v4-tcp');
      const args = ['-m', 'v6v4', '-t', 'tcp', '-a', 'digest-md5', '-u', 'dave', '--password-stdin'];
      await roundTrip(client, args, { type: 'v6v4', transport: 'tcp' });
    });

    nativeOnly('v6v4 over UDP without NAT (PLAIN)', async () => {
      const client = await lab.directClient('c-v6v4-udp');
      const args = ['-m', 'v6v4', '-a', 'plain', '-u', 'erin', '--password-stdin'];
      await roundTrip(client, args, { type: 'v6v4', transport: 'udp' });
    });

    nativeOnly('v6anyv4 without NAT gets v6v4, behind the NAT gets v6udpv4', async () => {
      await roundTrip(await lab.directClient('c-any-direct'), ['-m', 'v6anyv4'], { type: 'v6v4', transport: 'udp' });
      await roundTrip(await lab.natClient('c-any-nat'), ['-m', 'v6anyv4'], { type: 'v6udpv4', transport: 'udp' });
    });

    it('router mode: the delegated prefix on a LAN, a LAN host reachable from the internet and back', async () => {
      const client = await lab.natClient('c-router');
      const lanHost = await lab.topo.namespace('lan-host');
      await lab.topo.link(client.ns, [], lanHost, [], { aName: 'lan0', bName: 'eth0' });
      const forwardingBefore = (await client.ns.run('sysctl', ['-n', 'net.ipv6.conf.all.forwarding'])).trim();
      const t = tspc(
        client,
        [
          '-m',
          'v6udpv4',
          '-a',
          'any',
          '-u',
          'rita',
          '--password-stdin',
          '--router',
          '--prefixlen',
          '56',
          '--lan',
          'lan0',
          '--ra',
          'off', // the LAN host is configured by hand here; tspc-ra.test.ts covers router advertisements
        ],
        PASSWORD,
      );
      const up = await t.up();
      assert.ok(up.prefix, `a prefix was delegated: ${t.proc.stdout}`);
      const [prefixAddress, length] = up.prefix.split('/');
      assert.equal(length, '56');
      const gateway = firstHost(prefixAddress!);
      const hostAddress = gateway.replace(/::1$/, '::2');
      assert.match(await client.ns.ip('-6', 'addr', 'show', 'dev', 'lan0'), new RegExp(`${gateway}/64`));
      await lanHost.ip('-6', 'addr', 'add', `${hostAddress}/64`, 'dev', 'eth0', 'nodad');
      await lanHost.ip('-6', 'route', 'add', 'default', 'via', gateway);
      assert.equal(await lab.ping(lab.inet, hostAddress), true, 'internet -> LAN host through the tunnel');
      assert.equal(await lab.ping(lanHost, INET_HOST), true, 'LAN host -> internet');
      const env = readFileSync(`${t.hookOut}.TSP_TUNNEL_CREATION`, 'utf8');
      assert.match(env, /^TSP_PREFIXLEN=56$/m);
      assert.match(env, /^TSP_HOME_INTERFACE=lan0$/m);
      assert.match(env, /^TSP_PREFIX=[0-9a-f]{4}(:[0-9a-f]{4}){3}$/m, "gogoc's 19-character /56 form");
      assert.equal(await t.stop(), 0);
      await assertNothingLeft(client.ns, up.tun);
      assert.doesNotMatch(
        await client.ns.ip('-6', 'addr', 'show', 'dev', 'lan0'),
        new RegExp(gateway),
        'LAN address removed',
      );
      assert.equal((await client.ns.run('sysctl', ['-n', 'net.ipv6.conf.all.forwarding'])).trim(), forwardingBefore);
    });

    it('broker killed with SIGKILL and started again: tspc keeps or restores the tunnel, same addresses', async () => {
      const client = await lab.natClient('c-crash');
      const t = tspc(client, ['-m', 'v6udpv4', '-a', 'anonymous']);
      const before = await t.up();
      assert.equal(await lab.ping(client.ns, INET_HOST), true);
      await lab.killBroker();
      await lab.startBroker();
      await eventuallyAsync(
        () => lab.ping(client.ns, INET_HOST, ['-c', '1', '-W', '1']),
        'traffic after the restart',
        40_000,
      );
      const ups = t.proc.stdout.split('\n').filter((l) => l.includes('tunnel up:'));
      const now = parseUp(ups[ups.length - 1]!);
      assert.equal(now.address, before.address, 'same client address');
      assert.equal(await lab.ping(lab.inet, now.address), true, 'internet -> client');
      assert.equal(await t.stop(), 0);
      await assertNothingLeft(client.ns, before.tun);
    });

    it('conntrack flushed in the NAT: tspc recovers within the keepalive budget with the same addresses', async () => {
      const client = await lab.natClient('c-flush');
      const t = tspc(client, ['-m', 'v6udpv4', '-a', 'plain', '-u', 'nat1', '--password-stdin'], PASSWORD);
      const before = await t.up();
      assert.equal(await lab.ping(client.ns, INET_HOST), true);
      await lab.nat.run('conntrack', ['-F']);
      // budget: 3 misses x (2 s interval, 2 s timeout) + a new session, with margin
      await eventuallyAsync(
        () => lab.ping(client.ns, INET_HOST, ['-c', '1', '-W', '1']),
        'traffic after the flush',
        20_000,
      );
      const ups = t.proc.stdout.split('\n').filter((l) => l.includes('tunnel up:'));
      assert.equal(parseUp(ups[ups.length - 1]!).address, before.address, 'same client address');
      assert.equal(await lab.ping(lab.inet, before.address), true, 'internet -> client');
      await t.stop();
    });

    it('NAT mapping changed (another port range) and flushed: a new session, the same addresses', async () => {
      const client = await lab.natClient('c-remap');
      const t = tspc(client, ['-m', 'v6udpv4', '-a', 'digest-md5', '-u', 'nat2', '--password-stdin'], PASSWORD);
      const before = await t.up();
      assert.equal(await lab.ping(client.ns, INET_HOST), true);
      // The new range lies below the ephemeral ports (32768-60999) tspc binds from: a range that could hold
      // tspc's own port lets the NAT keep the old mapping, and then nothing changed for tspc to notice.
      await lab.nat.nft(
        'flush ruleset\ntable ip nat {\n' +
          '  chain postrouting { type nat hook postrouting priority 100; oifname "to-broker" meta l4proto udp masquerade to :20000-20999; }\n' +
          '}\n',
      );
      await lab.nat.run('conntrack', ['-F']);
      const after = await t.up(2); // keepalive dead -> reconnect from a new mapping
      assert.equal(after.address, before.address, 'same client address');
      assert.equal(after.server, before.server, 'same server address');
      assert.match(t.proc.stderr, /tunnel lost: no keepalive reply 3 times in a row; reconnecting/);
      await eventuallyAsync(
        () => lab.ping(client.ns, INET_HOST, ['-c', '1', '-W', '1']),
        'traffic after the new session',
      );
      assert.equal(await lab.ping(lab.inet, after.address), true, 'internet -> client');
      await t.stop();
      await assertNothingLeft(client.ns, before.tun);
      // later tests (none today) get the lab's NAT back
      await lab.nat.nft(
        'flush ruleset\ntable ip nat {\n' +
          '  chain postrouting { type nat hook postrouting priority 100; oifname "to-broker" masquerade; }\n' +
          '}\n',
      );
    });

    nativeOnly(
      'exit statuses against the real broker: wrong password 16 with advice, nobody at the address 9',
      async () => {
        const client = await lab.natClient('c-exit');
        const wrong = client.ns.spawn(process.execPath, [
          TSPC,
          '-s',
          client.server,
          '-m',
          'v6udpv4',
          '-a',
          'plain',
          '-u',
          'kim',
          '--password-stdin',
          '--status-file',
          path.join(lab.dir, 'exit.json'),
        ]);
        wrong.child.stdin?.end('not the password\n');
        assert.equal(await wrong.exited, 16);
        assert.match(wrong.stderr, /Authentication failed/);
        assert.match(wrong.stderr, /check userid and passwd/);
        const nobody = client.ns.spawn(process.execPath, [
          TSPC,
          '-s',
          '192.0.2.99',
          '-m',
          'v6udpv4',
          '--no-retry',
          '--status-file',
          path.join(lab.dir, 'exit.json'),
        ]);
        assert.equal(await nobody.exited, 9);
        assert.match(nobody.stderr, /no reply after 3 transmissions/);
      },
    );
  });
}
