/** v4v6 and TSP over IPv6 in the control plane: tspc's negotiation (client/negotiate.ts) over UDP and TCP on
 *  IPv6 loopback against an in-process broker (MemoryDataPlane) listening on ::1 as well as 127.0.0.1. Checks
 *  what a client and an operator see: CAPABILITY, the offer's addresses, the /30 an account keeps, the pool
 *  running out, the refusals by family, and the limits counted per IPv6 /64. Loopback and documentation ranges
 *  only; no root needed. */
import { test, after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import ipaddr from 'ipaddr.js';
import { RawUdp, eventually, udpDatagram } from '../../helpers/clients.js';
import { runSession } from '../../helpers/tsp.js';
import { resolveConfig, type RawConfig } from '../../../src/client/config.js';
import { negotiate } from '../../../src/client/negotiate.js';
import { silentLog } from '../../../src/client/log.js';
import { BrokerError } from '../../../src/errors.js';
import type { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import type { V4v6TunnelSpec } from '../../../src/dataplane/types.js';

const POOL = '198.51.100.0/29'; // two /30s: one per tunnel owner

const CONFIG = {
  listen: { address6: '::1' },
  tunnels: { types: ['v6v4', 'v6udpv4', 'v4v6'] as const },
  pools: { ipv4: POOL, accountReserve: 0 },
};
const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-v4v6-'));
let broker: TestBroker;
before(async () => {
  broker = await startTestBroker(structuredClone(CONFIG) as never, { dir });
  await broker.addUser('alice', 'correct horse');
  await broker.addUser('bob', 'battery staple');
  await broker.addUser('carol', 'another password');
});
after(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function run(raw: RawConfig) {
  const { config } = resolveConfig({ server: `[::1]:${broker.ports.udp}`, tunnel_mode: 'v4v6', ...raw });
  return negotiate(config, config.server, silentLog);
}

test('CAPABILITY lists what can be had over each family: V4V6 over IPv6, the IPv6-in-IPv4 types over IPv4', async () => {
  const want: [string, RegExp][] = [
    ['127.0.0.1', /^CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=/],
    ['::1', /^CAPABILITY TUNNEL=V4V6 AUTH=/],
  ];
  for (const [host, capability] of want) {
    const u = await RawUdp.open(host);
    try {
      const r = await u.request(udpDatagram(0xf0, 0, 'VERSION=2.0.2\r\n'), broker.ports.udp, 2000);
      assert.ok(r, `an answer over ${host}`);
      assert.match(r.subarray(8).toString(), capability, host);
    } finally {
      u.close();
    }
  }
  // over TCP (a session's own answer, not the stateless one)
  for (const [host, capability] of want) {
    const text = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host, port: broker.ports.tcp }, () => c.write('VERSION=2.0.2\r\n'));
      c.once('data', (b) => {
        resolve(b.toString());
        c.destroy();
      });
      c.once('error', reject);
    });
    assert.match(text, capability, `TCP ${host}`);
  }
});

for (const transport of ['udp', 'tcp'] as const)
  test(`${transport} over IPv6: a v4v6 offer with IPv6 endpoints and a /30 inside, in the data plane`, async () => {
    const n = await run({ transport, auth_method: 'digest-md5', userid: 'alice', passwd: 'correct horse' });
    assert.equal(n.transport, transport);
    assert.equal(n.offer.type, 'v4v6');
    assert.equal(canonical(n.offer.clientIpv6), '::1', 'the endpoint the broker saw');
    assert.equal(canonical(n.offer.serverIpv6), '::1', 'the address the client reached');
    assert.deepEqual([n.offer.serverIpv4, n.offer.clientIpv4], ['198.51.100.1', '198.51.100.2']);
    assert.deepEqual(n.offer.keepalive, { interval: 30, address: '198.51.100.1' });
    // the client is done when it has sent its accept; the broker establishes the tunnel as that arrives
    await eventually(() => broker.broker.liveTunnels().some((t) => t.username === 'alice'));
    const live = broker.broker.liveTunnels().find((t) => t.username === 'alice')!;
    assert.equal(live.type, 'v4v6');
    const spec = (broker.dataplane as MemoryDataPlane).tunnel(live.id as never) as V4v6TunnelSpec;
    assert.deepEqual(
      { client: spec.client, serverIpv4: spec.serverIpv4, clientIpv4: spec.clientIpv4 },
      { client: { address: '::1', port: 0 }, serverIpv4: '198.51.100.1', clientIpv4: '198.51.100.2' },
    );
  });

test('an account keeps its /30; a second owner gets the next; the pool running out is 301 for the third', async () => {
  const again = await run({ auth_method: 'plain', userid: 'alice', passwd: 'correct horse' });
  assert.equal(again.offer.clientIpv4, '198.51.100.2', 'the same inner address as before');
  const bob = await run({ auth_method: 'plain', userid: 'bob', passwd: 'battery staple' });
  assert.deepEqual([bob.offer.serverIpv4, bob.offer.clientIpv4], ['198.51.100.5', '198.51.100.6']);
  await assert.rejects(
    run({ auth_method: 'plain', userid: 'carol', passwd: 'another password' }),
    (e: unknown) => e instanceof BrokerError && /301/.test(e.message),
  );
});

test('by family: v4v6 over IPv4 and the IPv4 types over IPv6 are 303', async () => {
  const overV4 = await runSession({
    transport: 'udp',
    port: broker.ports.udp,
    type: 'v4v6',
    auth: { mechanism: 'ANONYMOUS' },
  });
  assert.equal(overV4.createStatus, 303);
  const u6 = await RawUdp.open('::1');
  try {
    const overV6 = await runSession({
      transport: 'udp',
      port: broker.ports.udp,
      type: 'v6udpv4',
      auth: { mechanism: 'ANONYMOUS' },
      udp: u6,
    });
    assert.equal(overV6.createStatus, 303);
  } finally {
    u6.close();
  }
});

test('router mode is refused for v4v6 with 518', async () => {
  const u6 = await RawUdp.open('::1');
  try {
    const r = await runSession({
      transport: 'udp',
      port: broker.ports.udp,
      type: 'v4v6',
      auth: { mechanism: 'PLAIN', username: 'alice', password: 'correct horse' },
      prefixLength: 56,
      udp: u6,
    });
    assert.equal(r.createStatus, 518);
  } finally {
    u6.close();
  }
});

function canonical(address: string): string {
  return ipaddr.IPv6.parse(address).toString();
}

test('after a restart, live v4v6 tunnels come back into the data plane as v4v6, with their addresses', async () => {
  // one live v4v6 tunnel per client IPv6 (the data plane tells them apart by it): bob's replaces alice's
  await run({ auth_method: 'plain', userid: 'bob', passwd: 'battery staple' });
  await eventually(() => broker.broker.liveTunnels().some((t) => t.username === 'bob'));
  const before = broker.broker.liveTunnels().filter((t) => t.type === 'v4v6');
  assert.ok(before.length >= 1);
  await broker.close();
  broker = await startTestBroker(structuredClone(CONFIG) as never, { dir });
  const after = broker.broker.liveTunnels();
  assert.deepEqual(
    after.map((t) => [t.id, t.type, t.clientIpv6, t.clientIpv4]).sort(),
    before.map((t) => [t.id, t.type, t.clientIpv6, t.clientIpv4]).sort(),
  );
  for (const t of after) {
    const spec = (broker.dataplane as MemoryDataPlane).tunnel(t.id as never) as V4v6TunnelSpec;
    assert.deepEqual(
      { type: spec.type, client: spec.client, clientIpv4: spec.clientIpv4, serverIpv4: spec.serverIpv4 },
      { type: 'v4v6', client: { address: '::1', port: 0 }, clientIpv4: t.clientIpv4, serverIpv4: t.serverIpv4 },
    );
  }
});
