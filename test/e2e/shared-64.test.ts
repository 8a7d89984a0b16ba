/** Shared-/64 link mode end to end: the real `tspc` command (bin/tspc.js) in client namespaces against a real
 *  `tsp-broker serve` process on each data-plane driver (native, and ebpf: the TC programs in front of the addon)
 *  with `pools.linkMode: "shared-64"` and a link pool of one /64 (test/helpers/broker-lab.ts has the topology):
 *
 *    A  behind the NAT, v6udpv4, DIGEST-MD5 as alice, router mode (/56)
 *    B  linked to the broker, v6v4, anonymous
 *
 *  Both get a /128 of their own in the same /64 and ping the internet host both ways; A's inner source may be
 *  its own address or one of its delegated prefix, and B's only its own address: A sourcing B's addresses, B
 *  sourcing A's, and either sourcing another address of the shared /64 are dropped (by the addon, or on ebpf
 *  by the programs; spoofed_source in /metrics) and never reach the internet host (an nftables counter there). Every wait is bounded; the lab is removed in after(). Needs root and
 *  /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  canonical,
  firstHost,
  labSkip,
  type LabClient,
  type LabDriver,
} from '../helpers/broker-lab.js';
import type { Netns, NetnsProcess } from '../helpers/netns.js';
import { overlaps, parsePrefix } from '../../src/store/prefix.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const PASSWORD = 'correct horse battery';
const LINK_POOL = '2001:db8:f00:1::/64';
const UP_TIMEOUT_MS = 25_000;

interface Up {
  proc: NetnsProcess;
  address: string;
  server: string;
  prefix?: string;
}

/** Starts tspc in the client's namespace and waits for its "tunnel up" line. */
async function tspcUp(client: LabClient, args: string[], password?: string): Promise<Up> {
  const proc = client.ns.spawn(process.execPath, [
    TSPC,
    '--server',
    client.server,
    '--keepalive-interval',
    '2',
    '--keepalive-timeout',
    '2',
    ...args,
  ]);
  proc.child.stdin?.end(password === undefined ? '' : `${password}\n`);
  const deadline = Date.now() + UP_TIMEOUT_MS;
  for (;;) {
    const line = proc.stdout.split('\n').find((l) => l.includes('tunnel up:'));
    const m = line && /tunnel up: \S+ on \S+, (\S+) <-> ([0-9a-f:]+)(?:, prefix (\S+))?/.exec(line);
    if (m) return { proc, address: canonical(m[1]!), server: canonical(m[2]!), ...(m[3] ? { prefix: m[3] } : {}) };
    if (proc.child.exitCode !== null)
      throw new Error(`tspc exited ${proc.child.exitCode}: ${proc.stdout}${proc.stderr}`);
    if (Date.now() > deadline) throw new Error(`tspc not up after ${UP_TIMEOUT_MS} ms: ${proc.stdout}${proc.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const driver of LAB_DRIVERS) shared64(driver);

function shared64(driver: LabDriver): void {
  describe(`shared-64 link mode end to end (${driver})`, { skip: labSkip(driver) }, () => {
    let lab: BrokerLab;
    let a: LabClient;
    let b: LabClient;
    let upA: Up;
    let upB: Up;

    before(async () => {
      lab = await BrokerLab.create({ pools: { link: LINK_POOL, linkMode: 'shared-64' }, dataplane: { driver } });
      await lab.addUser('alice', PASSWORD);
      a = await lab.natClient('s64-a');
      b = await lab.directClient('s64-b');
      // what reaches the internet host from each source, counted before its own firewall would drop anything
      await lab.inet.nft(
        'table ip6 seen {\n' +
          '  counter from_pool { }\n' +
          '  chain input { type filter hook input priority -300;\n' +
          `    ip6 saddr ${LINK_POOL} icmpv6 type echo-request counter name from_pool\n  }\n` +
          '}\n',
      );
      await lab.startBroker();
      upA = await tspcUp(
        a,
        ['-m', 'v6udpv4', '-a', 'digest-md5', '-u', 'alice', '--password-stdin', '--router', '--prefixlen', '56'],
        PASSWORD,
      );
      upB = await tspcUp(b, ['-m', 'v6v4', '-a', 'anonymous']);
    });

    after(async () => {
      await lab?.cleanup();
    });

    /** Echo requests the internet host has seen from the link pool's addresses. */
    async function seenFromPool(ns: Netns): Promise<number> {
      const out = await ns.run('nft', ['list', 'counter', 'ip6', 'seen', 'from_pool']);
      return Number(/packets (\d+)/.exec(out)![1]);
    }

    it('two tunnels get distinct client and server /128s in the same /64 of the pool', () => {
      const all = [upA.address, upA.server, upB.address, upB.server];
      assert.equal(new Set(all).size, 4, all.join(' '));
      for (const x of all) assert.ok(overlaps(parsePrefix(`${x}/128`), parsePrefix(LINK_POOL)), `${x} in ${LINK_POOL}`);
    });

    it('both clients ping the internet host, and it pings them', async () => {
      assert.equal(await lab.ping(a.ns, INET_HOST), true, 'A -> internet');
      assert.equal(await lab.ping(b.ns, INET_HOST), true, 'B -> internet');
      assert.equal(await lab.ping(lab.inet, upA.address), true, 'internet -> A');
      assert.equal(await lab.ping(lab.inet, upB.address), true, 'internet -> B');
      assert.equal(await lab.ping(a.ns, upB.address), true, 'A -> B through the broker');
    });

    it("router mode: an address of A's delegated prefix may be A's source", async () => {
      assert.ok(upA.prefix?.endsWith('/56'), `a /56 was delegated: ${upA.prefix}`);
      const inPrefix = firstHost(upA.prefix!.split('/')[0]!);
      await a.ns.ip('-6', 'addr', 'add', `${inPrefix}/128`, 'dev', 'lo');
      assert.equal(await lab.ping(a.ns, INET_HOST, ['-I', inPrefix]), true, 'sourced from the prefix');
    });

    /** `from` pings the internet host sourced from `spoofed` (put on its loopback): the addon drops every echo
     *  request as spoofed_source, and none reaches the internet host. */
    async function assertSpoofDropped(from: LabClient, spoofed: string): Promise<void> {
      await from.ns.ip('-6', 'addr', 'add', `${spoofed}/128`, 'dev', 'lo', 'nodad');
      try {
        const dropped = await lab.drops('spoofed_source');
        const seen = await seenFromPool(lab.inet);
        assert.equal(await lab.ping(from.ns, INET_HOST, ['-I', spoofed]), false, `${from.ns.name} sourcing ${spoofed}`);
        assert.ok((await lab.drops('spoofed_source')) >= dropped + 3, `the addon dropped the packets from ${spoofed}`);
        assert.equal(await seenFromPool(lab.inet), seen, `nothing from ${spoofed} reached the internet host`);
      } finally {
        await from.ns.ip('-6', 'addr', 'del', `${spoofed}/128`, 'dev', 'lo');
      }
    }

    it("neither client can use the other's addresses, nor any other address of the shared /64, as its source", async () => {
      for (const spoofed of [upB.address, upB.server, firstHost('2001:db8:f00:1:ffff::')])
        await assertSpoofDropped(a, spoofed);
      // B has no delegated prefix: its own /128 is all it may use
      for (const spoofed of [upA.address, firstHost('2001:db8:f00:1:ffff::')]) await assertSpoofDropped(b, spoofed);
      // the same counter does see what A sends from its own address: it is not blind
      const seen = await seenFromPool(lab.inet);
      assert.equal(await lab.ping(a.ns, INET_HOST), true);
      assert.equal(await seenFromPool(lab.inet), seen + 3);
      assert.equal(await lab.ping(b.ns, INET_HOST), true, 'B is unaffected');
    });
  });
}
