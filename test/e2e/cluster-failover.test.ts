/** A cluster failing over, end to end, with real parts only: two `tsp-broker serve --dataplane native` nodes in
 *  namespaces sharing one PostgreSQL (a server of the test's own, in the core namespace), each exporting its
 *  tunnels' routes (routes.table) to BIRD 2 with docs/cluster.md's node configuration, and a core router whose
 *  BIRD peers with both over BGP; the real tspc as the client, given both nodes as its servers.
 *
 *    client 192.0.2.2 ── core 192.0.2.1                     core 2001:db8:100::1 ── inet 2001:db8:100::2
 *                        core 198.51.100.1, 2001:db8:ffa1::1 ── node-a 198.51.100.2, 2001:db8:ffa1::2 (AS 64497)
 *                        core 198.51.100.5, 2001:db8:ffa2::1 ── node-b 198.51.100.6, 2001:db8:ffa2::2 (AS 64498)
 *                        core: PostgreSQL on 198.51.100.1 and .5, BIRD (AS 64496) installing what it learns
 *
 *  alice's tspc gets its tunnel on node-a and pings the internet host through it; core routes alice's /64 via
 *  node-a. node-a dies (kill -9 of the broker and of its BIRD). tspc's keepalives go unanswered, it reconnects to
 *  node-b, gets the same addresses; core's route moves to node-b and the pings come back. node-a restarted
 *  restores nothing of alice's (node-b ended that row) and announces nothing: one node carries the tunnel. The
 *  failover time (kill to the first echo reply through node-b) is printed as a diagnostic, never asserted.
 *  Every wait is bounded; the namespaces, daemons and files go at the end. Needs root, /dev/net/tun, BIRD 2 and
 *  PostgreSQL's server binaries (.ci/run installs both). */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Topology, type Netns, type NetnsProcess } from '../helpers/netns.js';
import { birdConfigFromDocs, haveBird, startBird, type Bird } from '../helpers/bird.js';
import { eventuallyAsync } from '../helpers/broker-lab.js';
import { tableRoutes } from '../helpers/routes.js';
import { startNetnsPostgres } from '../helpers/pg-netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BROKER = path.join(ROOT, 'bin/tsp-broker.js');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const skip =
  process.getuid?.() !== 0 || !existsSync('/dev/net/tun')
    ? 'needs root and /dev/net/tun'
    : !haveBird()
      ? 'needs BIRD 2 (apt-get install bird2)'
      : !existsSync('/usr/lib/postgresql')
        ? 'needs the PostgreSQL server (apt-get install postgresql)'
        : false;
const INET = '2001:db8:100::2';
const BIRD_PROTO = 12;
const WAIT_MS = 30_000;

const NODES = {
  a: { v4: '198.51.100.2', core4: '198.51.100.1', v6: '2001:db8:ffa1::2', core6: '2001:db8:ffa1::1', as: 64497 },
  b: { v4: '198.51.100.6', core4: '198.51.100.5', v6: '2001:db8:ffa2::2', core6: '2001:db8:ffa2::1', as: 64498 },
} as const;
type NodeName = keyof typeof NODES;

/** docs/cluster.md's node configuration with this node's addresses and AS number. */
function nodeBirdConfig(n: (typeof NODES)[NodeName]): string {
  return birdConfigFromDocs('# bird.conf on a broker node')
    .replace(/198\.51\.100\.2\b/g, n.v4)
    .replace(/198\.51\.100\.1\b/g, n.core4)
    .replace(/2001:db8:ffff::2\b/g, n.v6)
    .replace(/2001:db8:ffff::1\b/g, n.core6)
    .replace(/as 64497;/g, `as ${n.as};`);
}

/** The core router: what it learns from both nodes goes into its kernel table. */
function coreBirdConfig(): string {
  const sessions = (Object.entries(NODES) as [NodeName, (typeof NODES)[NodeName]][]).map(
    ([name, n]) => `
protocol bgp node_${name}6 {
  local ${n.core6} as 64496;
  neighbor ${n.v6} as ${n.as};
  hold time 9;
  ipv6 { import all; export none; };
}`,
  );
  return `router id 198.51.100.1;
protocol device {
}
protocol kernel {
  ipv6 { import none; export all; };
}
${sessions.join('\n')}
`;
}

describe('a cluster failing over', { skip }, () => {
  it('kill -9 of the node carrying a tunnel: tspc moves to the other node with the same addresses, BGP follows, pings resume', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-cluster-e2e-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const topo = await Topology.create(t);
    const core = await topo.namespace('core');
    const client = await topo.namespace('client');
    const inet = await topo.namespace('inet');
    const ns: Record<NodeName, Netns> = { a: await topo.namespace('node-a'), b: await topo.namespace('node-b') };
    await topo.link(client, ['192.0.2.2/24'], core, ['192.0.2.1/24']);
    await topo.link(inet, [`${INET}/64`], core, ['2001:db8:100::1/64']);
    for (const name of ['a', 'b'] as const) {
      const n = NODES[name];
      await topo.link(ns[name], [`${n.v4}/30`, `${n.v6}/64`], core, [`${n.core4}/30`, `${n.core6}/64`]);
      await ns[name].ip('route', 'add', 'default', 'via', n.core4);
      await ns[name].ip('-6', 'route', 'add', 'default', 'via', n.core6);
    }
    await client.ip('route', 'add', 'default', 'via', '192.0.2.1');
    await inet.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:100::1');
    await core.sysctl('net.ipv4.ip_forward', 1);
    await core.sysctl('net.ipv6.conf.all.forwarding', 1);

    const pg = await startNetnsPostgres(core, `${NODES.a.core4},${NODES.b.core4}`);
    t.after(() => pg.stop());
    const urlFor = (name: NodeName) => pg.url.replace(/@[^:]+:/, `@${NODES[name].core4}:`);

    const coreBird = await startBird(core, coreBirdConfig());
    t.after(() => coreBird.kill());
    const birds: Partial<Record<NodeName, Bird>> = {};
    const brokers: Partial<Record<NodeName, NetnsProcess>> = {};
    const startNode = async (name: NodeName) => {
      const file = path.join(dir, `node-${name}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          listen: { address: NODES[name].v4 },
          store: { driver: 'postgres', url: urlFor(name) },
          cluster: { nodeId: `node-${name}`, heartbeatS: 1, deadAfterS: 3 },
          routes: { table: 100, protocol: 150 },
          dataplane: { driver: 'native' },
          auth: { realm: 'tsp-e2e', plain: true },
          pools: { link: '2001:db8:f00::/48', delegation: '2001:db8:f000::/40' },
          tunnels: { keepalive: { default: 1, min: 1, max: 10 }, idleIntervals: 3, idleMinS: 5 },
          admin: { enabled: false },
          log: { level: 'info', format: 'json' },
        }),
      );
      const p = ns[name].spawn(process.execPath, [BROKER, 'serve', '--config', file]);
      brokers[name] = p;
      await p.waitFor('tsp-broker listening', 30_000);
      if (!birds[name]) {
        birds[name] = await startBird(ns[name], nodeBirdConfig(NODES[name]));
        t.after(() => birds[name]?.kill());
      }
    };
    await startNode('a');
    await startNode('b');
    const add = await ns.a.exec(
      process.execPath,
      [BROKER, 'user', 'add', 'alice', '--password-stdin', '--db-url', urlFor('a'), '--realm', 'tsp-e2e'],
      { input: 'correct horse battery\n', timeoutMs: 30_000 },
    );
    assert.equal(add.code, 0, add.stderr);
    for (const name of ['a', 'b'] as const)
      await eventuallyAsync(() => birds[name]!.established('upstream6'), `node-${name}'s BGP session`, WAIT_MS);

    // alice's tspc, both nodes as its servers, keepalives every second, dead after two unanswered
    const status = path.join(dir, 'tspc-status.json');
    const tspc = client.spawn(process.execPath, [
      TSPC,
      '--server',
      `${NODES.a.v4},${NODES.b.v4}`,
      '-u',
      'alice',
      '--password-stdin',
      '-m',
      'v6udpv4',
      '--keepalive-interval',
      '1',
      '--keepalive-timeout',
      '1',
      '--keepalive-misses',
      '2',
      '--retry-delay',
      '1',
      '--status-file',
      status,
    ]);
    tspc.child.stdin?.end('correct horse battery\n');
    const tunnel = () => {
      try {
        return (JSON.parse(readFileSync(status, 'utf8')) as { state: string; tunnel?: Record<string, string> }).tunnel;
      } catch {
        return undefined;
      }
    };
    await eventuallyAsync(async () => tunnel()?.serverIpv4 === NODES.a.v4, 'tspc up on node-a', WAIT_MS);
    const address = tunnel()!.clientIpv6!;
    const block = `${address.replace(/::2$/, '::')}/64`;
    const core6 = () => tableRoutes(core, '-6', 'main', BIRD_PROTO, { via: true });
    await eventuallyAsync(
      async () => (await core6()).includes(`${block} via ${NODES.a.v6}`),
      "core to route alice's /64 via node-a",
      WAIT_MS,
    );
    const ping = client.spawn('ping', ['-6', '-D', '-n', '-i', '0.2', '-W', '1', '-w', '120', INET]);
    const replies = () =>
      [...ping.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from /gm)].map((m) => Number(m[1]) * 1000);
    await eventuallyAsync(async () => replies().length >= 3, 'pings through node-a', WAIT_MS);

    // node-a dies: its broker (kill -9) and its BIRD
    const killedAt = Date.now();
    brokers.a!.child.kill('SIGKILL');
    await brokers.a!.exited;
    await birds.a!.kill();
    delete birds.a;
    await eventuallyAsync(async () => tunnel()?.serverIpv4 === NODES.b.v4, 'tspc up on node-b', WAIT_MS);
    assert.equal(tunnel()!.clientIpv6, address, 'the same addresses on node-b');
    await eventuallyAsync(
      async () => (await core6()).includes(`${block} via ${NODES.b.v6}`),
      "core to route alice's /64 via node-b",
      WAIT_MS,
    );
    await eventuallyAsync(async () => replies().some((at) => at > killedAt), 'pings through node-b', WAIT_MS);
    const first = replies().find((at) => at > killedAt)!;
    t.diagnostic(
      `failover: ${((first - killedAt) / 1000).toFixed(2)} s from kill -9 to the first echo reply through node-b`,
    );
    console.log(
      `# failover: ${((first - killedAt) / 1000).toFixed(2)} s from kill -9 to the first echo reply through node-b`,
    );
    const rows = await pg.query(
      "select node || ':' || state || ':' || coalesce(end_reason, '-') from tunnels order by id",
    );
    assert.deepEqual(rows.trim().split('\n'), ['node-a:ended:replaced', 'node-b:established:-']);

    // node-a comes back: nothing of alice's is its own any more, so it carries and announces nothing
    await startNode('a');
    await eventuallyAsync(() => birds.a!.established('upstream6'), "node-a's BGP session again", WAIT_MS);
    await new Promise((r) => setTimeout(r, 3000)); // time for a wrong announcement to arrive
    assert.deepEqual(await tableRoutes(ns.a, '-6', 100, 150), [], 'node-a exports no route');
    assert.deepEqual(
      (await core6()).filter((r) => r.startsWith(block)),
      [`${block} via ${NODES.b.v6}`],
      'one node announces the tunnel',
    );
    tspc.child.kill('SIGTERM');
    await tspc.exited;
    ping.child.kill('SIGKILL');
    for (const name of ['a', 'b'] as const) await brokers[name]?.kill();
  });
});
