/** Route export from a real `tsp-broker serve --dataplane native` process with `routes.table` set
 *  (test/helpers/broker-lab.ts has the topology): a router-mode client's tunnel puts its link /64 and its
 *  delegated /56 into the broker namespace's table 100 with tag 150, through the broker's TUN device; /metrics
 *  counts them; a kill -9 takes them away with the TUN device and a restart puts them back (the tunnel is
 *  restored); when the client goes silent and its tunnel ends, they are removed. Needs root and /dev/net/tun. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { BrokerLab, eventuallyAsync, type LabClient } from '../helpers/broker-lab.js';
import { tableRoutes } from '../helpers/routes.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const PASSWORD = 'correct horse battery';
const TABLE = 100;
const PROTO = 150;
const WAIT_MS = 20_000;

/** The /64 around an address, as `ip` prints it. */
function slash64(address: string): string {
  const bytes = ipaddr.IPv6.parse(address).toByteArray().fill(0, 8);
  return `${ipaddr.fromByteArray(bytes).toString()}/64`;
}

describe('route export from a broker', { skip: canRun ? false : 'needs root and /dev/net/tun' }, () => {
  let lab: BrokerLab;
  let client: LabClient;

  before(async () => {
    lab = await BrokerLab.create({ routes: { table: TABLE, protocol: PROTO } });
    await lab.addUser('heidi', PASSWORD);
    client = await lab.natClient('client-h');
    await lab.startBroker();
  });

  after(async () => {
    await lab?.cleanup();
  });

  it('routes a tunnel’s link block and prefix while it is live, across a kill -9 and restart, and not after it ends', async () => {
    const routes = () => tableRoutes(lab.broker, '-6', TABLE, PROTO);
    const up = await lab.startClient(client, {
      type: 'v6udpv4',
      username: 'heidi',
      password: PASSWORD,
      prefixLength: 56,
    });
    const expected = [slash64(up.address), `${up.offer.prefix!.address}/56`]
      .map((p) => {
        const [a, len] = ipaddr.parseCIDR(p);
        return `${a.toString()}/${len}`;
      })
      .sort();
    await eventuallyAsync(async () => (await routes()).join() === expected.join(), 'the tunnel’s routes', WAIT_MS);
    const dev = await lab.broker.ip('-6', 'route', 'show', 'table', String(TABLE), 'proto', String(PROTO));
    assert.match(dev, /dev tsp0/, 'through the broker’s TUN device');
    assert.equal((await lab.metrics()).get('tsp_routes_exported'), 2);

    await lab.killBroker();
    await eventuallyAsync(async () => (await routes()).length === 0, 'the routes to go with the TUN device', WAIT_MS);
    await lab.startBroker();
    await eventuallyAsync(async () => (await routes()).join() === expected.join(), 'the restored routes', WAIT_MS);

    await up.stop(); // no more keepalives: the tunnel ends idle (3 intervals of 2 s, at least 5 s)
    await eventuallyAsync(async () => (await routes()).length === 0, 'the ended tunnel’s routes to go', WAIT_MS);
    const ended = (await lab.tunnelList()).filter((t) => t.username === 'heidi');
    assert.ok(ended.length > 0 && ended.every((t) => t.state === 'ended'), 'its tunnel ended');
    assert.equal((await lab.metrics()).get('tsp_routes_exported'), 0);
    assert.equal((await lab.metrics()).get('tsp_route_command_failures_total'), 0);
  });
});
