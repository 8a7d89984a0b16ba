/** v4v6 end to end: the real `tspc` command (bin/tspc.js) in client namespaces that have only IPv6, against a
 *  real `tsp-broker serve` process offering v4v6, on each data-plane driver (test/helpers/broker-lab.ts has the
 *  topology; this test adds IPv6-only client links and IPv4 on the broker's link to the internet host). The
 *  eBPF programs leave v4v6 to the addon behind them: on ebpf this shows they let it through untouched:
 *
 *    A  2001:db8:c6:1::2 ── broker 2001:db8:c6:1::1   anonymous, TSP over UDP
 *    B  2001:db8:c6:2::2 ── broker 2001:db8:c6:2::1   alice, DIGEST-MD5, TSP over TCP
 *       both reach the broker's TSP address 2001:db8:c6::1 (listen.address6, on its loopback) by their default route
 *                            broker 198.51.100.161/28 ── inet 198.51.100.162 (IPv4 default route via the broker)
 *
 *  Each client gets a /30 of pools.ipv4 (198.51.100.192/26) inside IPv6, pings the internet host's IPv4 and the
 *  broker's inner address through it, and is pinged back; a client sourcing an address that is not its own is
 *  dropped by the addon (spoofed_source in /metrics) and nothing of it reaches the internet host (an nftables
 *  counter there); an account gets the same /30 when it comes back. Every wait is bounded; the lab is removed in
 *  after(). Needs root and /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { BrokerLab, LAB_DRIVERS, labSkip, type LabDriver } from '../helpers/broker-lab.js';
import type { Netns, NetnsProcess } from '../helpers/netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const PASSWORD = 'correct horse battery';
const POOL = '198.51.100.192/26';
const INET4 = '198.51.100.162';
const BROKER6 = '2001:db8:c6::1';
const UP_TIMEOUT_MS = 25_000;

interface Up {
  proc: NetnsProcess;
  /** The client's and the broker's inner IPv4. */
  address: string;
  server: string;
}

/** Starts tspc in `ns` and waits for its "tunnel up" line. */
async function tspcUp(lab: BrokerLab, ns: Netns, server: string, args: string[], password?: string): Promise<Up> {
  const proc = ns.spawn(process.execPath, [
    TSPC,
    '--server',
    `[${server}]`,
    '-m',
    'v4v6',
    '--keepalive-interval',
    '2',
    '--keepalive-timeout',
    '2',
    '--status-file',
    path.join(lab.dir, `tspc-${ns.name}.json`),
    ...args,
  ]);
  proc.child.stdin?.end(password === undefined ? '' : `${password}\n`);
  const deadline = Date.now() + UP_TIMEOUT_MS;
  for (;;) {
    const line = proc.stdout.split('\n').find((l) => l.includes('tunnel up:'));
    const m = line && /tunnel up: v4v6 on \S+, ([0-9.]+) <-> ([0-9.]+)/.exec(line);
    if (m) return { proc, address: m[1]!, server: m[2]! };
    if (proc.child.exitCode !== null)
      throw new Error(`tspc exited ${proc.child.exitCode}: ${proc.stdout}${proc.stderr}`);
    if (Date.now() > deadline) throw new Error(`tspc not up after ${UP_TIMEOUT_MS} ms: ${proc.stdout}${proc.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** ping -4, 3 echoes with bounded waits: whether replies came back. */
async function ping4(ns: Netns, to: string, extra: string[] = []): Promise<boolean> {
  const r = await ns.exec('ping', ['-4', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to], { timeoutMs: 15_000 });
  return r.code === 0;
}

for (const driver of LAB_DRIVERS) v4v6EndToEnd(driver);

function v4v6EndToEnd(driver: LabDriver): void {
  describe(`v4v6 end to end (${driver})`, { skip: labSkip(driver) }, () => {
    let lab: BrokerLab;
    let a: Netns;
    let b: Netns;
    let upA: Up;
    let upB: Up;

    before(async () => {
      lab = await BrokerLab.create({
        listen: { address6: BROKER6 },
        tunnels: { types: ['v6v4', 'v6udpv4', 'v4v6'] },
        pools: { ipv4: POOL },
        dataplane: { driver },
      });
      await lab.addUser('alice', PASSWORD);
      a = await lab.topo.namespace('v46-a');
      b = await lab.topo.namespace('v46-b');
      await lab.topo.link(a, ['2001:db8:c6:1::2/64'], lab.broker, ['2001:db8:c6:1::1/64']);
      await lab.topo.link(b, ['2001:db8:c6:2::2/64'], lab.broker, ['2001:db8:c6:2::1/64']);
      await lab.broker.ip('-6', 'addr', 'add', `${BROKER6}/128`, 'dev', 'lo', 'nodad');
      await a.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:c6:1::1');
      await b.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:c6:2::1');
      // the internet host's IPv4, reached through the broker (no NAT44 needed: it routes back to the broker)
      await lab.broker.ip('addr', 'add', '198.51.100.161/28', 'dev', 'to-inet');
      await lab.inet.ip('addr', 'add', `${INET4}/28`, 'dev', 'to-broker');
      await lab.inet.ip('route', 'add', 'default', 'via', '198.51.100.161');
      await lab.inet.nft(
        'table ip seen {\n' +
          '  counter from_pool { }\n' +
          '  chain input { type filter hook input priority -300;\n' +
          `    ip saddr ${POOL} icmp type echo-request counter name from_pool\n  }\n` +
          '}\n',
      );
      await lab.startBroker();
      upA = await tspcUp(lab, a, BROKER6, ['-a', 'anonymous']);
      upB = await tspcUp(
        lab,
        b,
        BROKER6,
        ['-t', 'tcp', '-a', 'digest-md5', '-u', 'alice', '--password-stdin'],
        PASSWORD,
      );
    });

    after(async () => {
      await lab?.cleanup();
    });

    async function seenFromPool(): Promise<number> {
      const out = await lab.inet.run('nft', ['list', 'counter', 'ip', 'seen', 'from_pool']);
      return Number(/packets (\d+)/.exec(out)![1]);
    }

    it('each client gets its own /30 of the pool, the broker .1 and the client .2', () => {
      const inPool = (x: string) => x.startsWith('198.51.100.') && Number(x.split('.')[3]) >= 192;
      for (const up of [upA, upB]) {
        assert.ok(inPool(up.address) && inPool(up.server), `${up.address} <-> ${up.server} in ${POOL}`);
        const last = Number(up.address.split('.')[3]);
        assert.equal(last % 4, 2, `${up.address} is .2 of its /30`);
        assert.equal(Number(up.server.split('.')[3]), last - 1, `${up.server} is .1 of the same /30`);
      }
      assert.notEqual(upA.address, upB.address);
    });

    it('IPv4 crosses the IPv6-only links: both clients ping the internet host, the broker, and are pinged', async () => {
      assert.equal(await ping4(a, INET4), true, 'A -> internet over UDP-negotiated v4v6');
      assert.equal(await ping4(b, INET4), true, 'B -> internet over TCP-negotiated v4v6');
      assert.equal(await ping4(a, upA.server), true, "A -> the broker's inner address (answered by the addon)");
      assert.equal(await ping4(lab.inet, upA.address), true, 'internet -> A');
      assert.equal(await ping4(lab.inet, upB.address), true, 'internet -> B');
      assert.equal(await ping4(a, upB.address), true, 'A -> B through the broker');
    });

    it('an operator sees v4v6 tunnels with their IPv6 endpoints', async () => {
      const live = (await lab.tunnelList()).filter((t) => t.state === 'established' && t.type === 'v4v6');
      const byEndpoint = new Map(live.map((t) => [t.clientIpv6, t]));
      assert.equal(byEndpoint.get('2001:db8:c6:1::2')?.clientIpv4, upA.address);
      assert.equal(byEndpoint.get('2001:db8:c6:2::2')?.username, 'alice');
      const m = await lab.metrics();
      assert.equal(m.get('tsp_tunnels_live{type="v4v6"}'), 2);
      assert.equal(m.get('tsp_pool_allocated_blocks{pool="ipv4"}'), 2);
    });

    it("a source that is not the client's own is dropped, and nothing of it reaches the internet host", async () => {
      const spoofed = '198.51.100.250';
      await a.ip('addr', 'add', `${spoofed}/32`, 'dev', 'lo');
      try {
        const dropped = await lab.drops('spoofed_source');
        const seen = await seenFromPool();
        assert.equal(await ping4(a, INET4, ['-I', spoofed]), false);
        assert.ok((await lab.drops('spoofed_source')) >= dropped + 3, 'the addon dropped them');
        assert.equal(await seenFromPool(), seen, 'none reached the internet host');
      } finally {
        await a.ip('addr', 'del', `${spoofed}/32`, 'dev', 'lo');
      }
      const seen = await seenFromPool();
      assert.equal(await ping4(a, INET4), true, 'its own address still works');
      assert.equal(await seenFromPool(), seen + 3, 'and the counter sees it');
    });

    it('an account that comes back gets the same /30', async () => {
      // tspc stops without telling the broker (as gogoc does): the next session replaces the tunnel
      await upB.proc.kill();
      const again = await tspcUp(lab, b, BROKER6, ['-a', 'digest-md5', '-u', 'alice', '--password-stdin'], PASSWORD);
      assert.equal(again.address, upB.address);
      assert.equal(await ping4(b, INET4), true);
      upB = again;
    });
  });
}
