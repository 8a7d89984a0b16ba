/** cluster/routes: RouteExporter against the kernel. Each test has a network namespace with a real TUN device
 *  (test/helpers/netns.ts), a real tunnel registry (broker/tunnels.ts over a SQLite file and the in-memory data
 *  plane model), and an exporter running `ip` in that namespace; what is checked is what `ip route show table T
 *  proto P` prints there, as a routing daemon would read it. Install, remove, the start's flush of stale routes
 *  (a previous process's) and its restore, a killed `ip -batch` child, close. Needs root and /dev/net/tun. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import type { NewTunnel, TunnelRecord } from '../../../src/store/types.js';
import type { TunnelRegistry } from '../../../src/broker/tunnels.js';
import type { RouteExporter } from '../../../src/cluster/routes.js';
import { Topology, type Netns } from '../../helpers/netns.js';
import { registryLab, tableRoutes, tunDevice } from '../../helpers/routes.js';
import { eventuallyAsync } from '../../helpers/broker-lab.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const TABLE = 4242;
const PROTO = 150;
const DEV = 'tsp0';

interface Lab {
  ns: Netns;
  registry(): TunnelRegistry;
  exporter(linkLeaseLen?: number, restartDelayMs?: number): RouteExporter;
  /** A new tunnel row, offered, for the registry to establish. */
  offer(over: Partial<NewTunnel>): Promise<TunnelRecord>;
  v6(protocol?: number | null): Promise<string[]>;
  v4(protocol?: number | null): Promise<string[]>;
}

async function lab(t: TestContext): Promise<Lab> {
  const topo = await Topology.create(t);
  const ns = await topo.namespace('routes');
  await tunDevice(ns, DEV);
  const r = await registryLab(t, ns);
  return {
    ns,
    registry: r.registry,
    exporter: (linkLeaseLen = 64, restartDelayMs = 50) =>
      r.exporter({ table: TABLE, protocol: PROTO, device: DEV, linkLeaseLen, restartDelayMs }),
    offer: r.offer,
    v6: (protocol = PROTO) => tableRoutes(ns, '-6', TABLE, protocol),
    v4: (protocol = PROTO) => tableRoutes(ns, '-4', TABLE, protocol),
  };
}

/** A v6udpv4 tunnel of /64 link block 2001:db8:0:<n>::/64, with a delegated /56 when `prefix` is given. */
function v6Tunnel(n: number, prefix?: string): Partial<NewTunnel> {
  return {
    serverIpv6: `2001:db8:0:${n}::1`,
    clientIpv6: `2001:db8:0:${n}::2`,
    ...(prefix ? { prefix, prefixLen: 56 } : {}),
  };
}

describe(
  'RouteExporter (kernel routes in a namespace)',
  { skip: canRun ? false : 'needs root and /dev/net/tun' },
  () => {
    it('installs a tunnel’s link block and delegated prefix when it is established, and removes them when it ends', async (t) => {
      const l = await lab(t);
      const registry = l.registry();
      const exporter = l.exporter();
      await exporter.start(registry);
      assert.deepEqual(await l.v6(), []);
      const a = await registry.establish(await l.offer(v6Tunnel(1, '2001:db8:f000:100::')), { replaceAccount: false });
      const b = await registry.establish(await l.offer(v6Tunnel(2)), { replaceAccount: false });
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:0:1::/64', '2001:db8:0:2::/64', '2001:db8:f000:100::/56']);
      assert.equal(exporter.stats.exported, 3);
      await registry.end(a.id, 'deleted');
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:0:2::/64']);
      await registry.end(b.id, 'deleted');
      await exporter.settled();
      assert.deepEqual(await l.v6(), []);
      assert.equal(exporter.stats.failures, 0);
    });

    it('routes a /126 in shared-64 mode and a v4v6 tunnel’s /30, and keeps a block two live tunnels share until the last ends', async (t) => {
      const l = await lab(t);
      const registry = l.registry();
      const exporter = l.exporter(126);
      await exporter.start(registry);
      const shared = { serverIpv6: '2001:db8:1:1::5', clientIpv6: '2001:db8:1:1::6' };
      const a = await registry.establish(await l.offer(shared), { replaceAccount: false });
      const b = await registry.establish(await l.offer({ ...shared, type: 'v6v4', clientPort: 0 }), {
        replaceAccount: false,
      });
      const v4v6 = await registry.establish(
        await l.offer({
          type: 'v4v6',
          clientPort: 0,
          clientIpv6: '2001:db8:ffff::2',
          serverIpv6: '2001:db8:ffff::1',
          serverIpv4: '198.51.100.9',
          clientIpv4: '198.51.100.10',
        }),
        { replaceAccount: false },
      );
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:1:1::4/126']);
      assert.deepEqual(await l.v4(), ['198.51.100.8/30']);
      await registry.end(a.id, 'deleted');
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:1:1::4/126'], 'the other tunnel still holds the block');
      await registry.endAll([
        [b.id, 'deleted'],
        [v4v6.id, 'deleted'],
      ]);
      await exporter.settled();
      assert.deepEqual(await l.v6(), []);
      assert.deepEqual(await l.v4(), []);
    });

    it('at start flushes what a previous process left under its tag and installs the restored tunnels, leaving other routes alone', async (t) => {
      const l = await lab(t);
      const first = l.registry();
      const live = await first.establish(await l.offer(v6Tunnel(3, '2001:db8:f000:300::')), { replaceAccount: false });
      // left by a process that died: a route of a tunnel that ended meanwhile, of both families
      await l.ns.ip('route', 'add', '2001:db8:0:99::/64', 'dev', DEV, 'table', String(TABLE), 'proto', String(PROTO));
      await l.ns.ip('route', 'add', '203.0.113.4/30', 'dev', DEV, 'table', String(TABLE), 'proto', String(PROTO));
      // someone else's routes in the same table: another tag, and an administrator's (proto static)
      await l.ns.ip('route', 'add', '2001:db8:0:98::/64', 'dev', DEV, 'table', String(TABLE), 'proto', '151');
      await l.ns.ip('route', 'add', '2001:db8:0:97::/64', 'dev', DEV, 'table', String(TABLE));
      const restarted = l.registry(); // a new process: the registry restores from the store
      assert.equal(await restarted.restore(), 1);
      const exporter = l.exporter();
      await exporter.start(restarted);
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:0:3::/64', '2001:db8:f000:300::/56']);
      assert.deepEqual(await l.v4(), []);
      assert.deepEqual(await l.v6(null), [
        '2001:db8:0:3::/64',
        '2001:db8:0:97::/64',
        '2001:db8:0:98::/64',
        '2001:db8:f000:300::/56',
      ]);
      assert.equal(live.state, 'established');
      await exporter.close();
      assert.deepEqual(await l.v6(), [], 'close removes ours');
      assert.deepEqual(await l.v6(null), ['2001:db8:0:97::/64', '2001:db8:0:98::/64'], 'and only ours');
    });

    it('replaces a killed ip -batch child and resyncs: changes made meanwhile are applied, stale routes of our tag flushed', async (t) => {
      const l = await lab(t);
      const registry = l.registry();
      const exporter = l.exporter(64, 1000); // a second without a child: the changes below happen in it
      const a = await registry.establish(await l.offer(v6Tunnel(4)), { replaceAccount: false });
      await exporter.start(registry);
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:0:4::/64']);
      // someone adds a route under our tag behind the exporter's back: the resync's flush must remove it
      await l.ns.ip('route', 'add', '2001:db8:0:77::/64', 'dev', DEV, 'table', String(TABLE), 'proto', String(PROTO));
      const pid = exporter.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGKILL');
      await eventuallyAsync(async () => exporter.stats.restarts === 1, 'the exporter to notice its child died', 5000);
      // while no child runs: one tunnel ends, one starts (the maps change; the resync writes them)
      await registry.end(a.id, 'deleted');
      await registry.establish(await l.offer(v6Tunnel(5)), { replaceAccount: false });
      await exporter.settled();
      assert.notEqual(exporter.pid, pid);
      assert.deepEqual(await l.v6(), ['2001:db8:0:5::/64']);
      await registry.establish(await l.offer(v6Tunnel(6)), { replaceAccount: false });
      await exporter.settled();
      assert.deepEqual(await l.v6(), ['2001:db8:0:5::/64', '2001:db8:0:6::/64'], 'the new child takes changes');
    });

    it('counts a route the kernel refuses', async (t) => {
      const l = await lab(t);
      const registry = l.registry();
      const exporter = l.exporter();
      await exporter.start(registry);
      await l.ns.ip('link', 'del', 'dev', DEV); // the device is gone: every route through it is refused
      await registry.establish(await l.offer(v6Tunnel(7)), { replaceAccount: false });
      await exporter.settled();
      await eventuallyAsync(async () => exporter.stats.failures === 1, 'one failed route command', 5000);
      assert.deepEqual(await l.v6(), []);
    });
  },
);
