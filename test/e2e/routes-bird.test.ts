/** Route export announced by BIRD over BGP, as docs/cluster.md sets it up, with the configuration files read
 *  from that page (test/helpers/bird.ts): two namespaces joined by a veth,
 *
 *    node  2001:db8:ffff::2, 198.51.100.2 (AS 64497): a TUN device, a RouteExporter (cluster/routes.ts) driven by
 *          the tunnel registry, BIRD 2 learning kernel table 100, tag 150, and announcing it over two BGP sessions
 *    core  2001:db8:ffff::1, 198.51.100.1 (AS 64496): BIRD 2 installing what it learns into its main table
 *
 *  A tunnel established on the node appears in core's routing table via the node's address; an ended one is
 *  withdrawn; a route of another tag in the same table is not announced; when the node's BIRD dies, core drops
 *  its routes. Every wait is bounded. Needs root, /dev/net/tun and BIRD 2 (Debian's bird2; .ci/run installs it). */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Topology } from '../helpers/netns.js';
import { registryLab, tableRoutes, tunDevice } from '../helpers/routes.js';
import { birdConfigFromDocs, haveBird, startBird } from '../helpers/bird.js';
import { eventuallyAsync } from '../helpers/broker-lab.js';

const skip =
  process.getuid?.() !== 0 || !existsSync('/dev/net/tun')
    ? 'needs root and /dev/net/tun'
    : !haveBird()
      ? 'needs BIRD 2 (apt-get install bird2)'
      : false;
const TABLE = 100; // as in docs/cluster.md
const PROTO = 150;
const BIRD_PROTO = 12; // what BIRD tags the routes it installs with (RTPROT_BIRD)
const WAIT_MS = 20_000;

describe('route export announced by BIRD over BGP', { skip }, () => {
  it('core learns a tunnel’s routes via the node, loses them when the tunnel ends and when the node’s BIRD dies', async (t) => {
    const topo = await Topology.create(t);
    const node = await topo.namespace('node');
    const core = await topo.namespace('core');
    await topo.link(node, ['2001:db8:ffff::2/64', '198.51.100.2/24'], core, ['2001:db8:ffff::1/64', '198.51.100.1/24']);
    await tunDevice(node, 'tsp0');
    const lab = await registryLab(t, node);
    const registry = lab.registry();
    const exporter = lab.exporter({ table: TABLE, protocol: PROTO, device: 'tsp0', linkLeaseLen: 64 });
    await exporter.start(registry);

    const coreBird = await startBird(core, birdConfigFromDocs('# bird.conf on the upstream router'));
    t.after(() => coreBird.kill());
    const nodeBird = await startBird(node, birdConfigFromDocs('# bird.conf on a broker node'));
    t.after(() => nodeBird.kill());
    for (const session of ['upstream6', 'upstream4'])
      await eventuallyAsync(() => nodeBird.established(session), `BGP session ${session}`, WAIT_MS);

    const core6 = () => tableRoutes(core, '-6', 'main', BIRD_PROTO, { via: true });
    const core4 = () => tableRoutes(core, '-4', 'main', BIRD_PROTO, { via: true });
    const v6 = await registry.establish(
      await lab.offer({
        serverIpv6: '2001:db8:f00:1::1',
        clientIpv6: '2001:db8:f00:1::2',
        prefix: '2001:db8:f000:100::',
        prefixLen: 56,
      }),
      { replaceAccount: false },
    );
    const v4v6 = await registry.establish(
      await lab.offer({
        type: 'v4v6',
        clientPort: 0,
        clientIpv6: '2001:db8:aaaa::2',
        serverIpv6: '2001:db8:aaaa::1',
        serverIpv4: '203.0.113.9',
        clientIpv4: '203.0.113.10',
      }),
      { replaceAccount: false },
    );
    // someone else's route in the broker's table, with another tag: the node's filter keeps it out
    await node.ip('route', 'add', '2001:db8:bad::/48', 'dev', 'tsp0', 'table', String(TABLE), 'proto', '151');
    const announced6 = [
      '2001:db8:f00:1::/64 via 2001:db8:ffff::2',
      '2001:db8:f000:100::/56 via 2001:db8:ffff::2',
    ].sort();
    await eventuallyAsync(
      async () => JSON.stringify(await core6()) === JSON.stringify(announced6),
      'core to learn the tunnel’s IPv6 routes',
      WAIT_MS,
    );
    await eventuallyAsync(
      async () => (await core4()).join() === '203.0.113.8/30 via 198.51.100.2',
      'core to learn the v4v6 tunnel’s /30',
      WAIT_MS,
    );

    await registry.endAll([
      [v6.id, 'deleted'],
      [v4v6.id, 'deleted'],
    ]);
    await eventuallyAsync(async () => (await core6()).length === 0, 'core to drop the ended tunnel’s routes', WAIT_MS);
    await eventuallyAsync(async () => (await core4()).length === 0, 'core to drop the v4v6 /30', WAIT_MS);

    await registry.establish(await lab.offer({ serverIpv6: '2001:db8:f00:2::1', clientIpv6: '2001:db8:f00:2::2' }), {
      replaceAccount: false,
    });
    await eventuallyAsync(
      async () => (await core6()).join() === '2001:db8:f00:2::/64 via 2001:db8:ffff::2',
      'core to learn a new tunnel',
      WAIT_MS,
    );
    await nodeBird.kill();
    await eventuallyAsync(async () => (await core6()).length === 0, 'core to withdraw a dead node’s routes', WAIT_MS);
    assert.deepEqual(await tableRoutes(node, '-6', TABLE, PROTO), ['2001:db8:f00:2::/64'], 'the node still has it');
  });
});
