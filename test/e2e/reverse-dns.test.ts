/** Reverse-DNS delegation against a real authoritative server (Knot DNS, test/helpers/knot.ts): a router-mode
 *  session that names name servers gets its prefix's ip6.arpa zone delegated to them by a TSIG-signed RFC 2136
 *  update; a new wish replaces them; a new prefix moves them; a refused update, a server that is down or names
 *  we will not publish answer 509; a deleted account's delegation is withdrawn. What is checked is what anyone
 *  on the internet would see: the NS records the server answers with. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { reverseZoneNames } from '../../src/dns/reverse.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { haveKnot, startKnot, type Knot } from '../helpers/knot.js';
import { runSession } from '../helpers/tsp.js';
import { resolveConfig } from '../../src/client/config.js';
import { negotiate } from '../../src/client/negotiate.js';
import { silentLog } from '../../src/client/log.js';

const ZONE = '0.f.8.b.d.0.1.0.0.2.ip6.arpa'; // the test broker's delegation pool, 2001:db8:f000::/40
const KEY = { name: 'tsp-broker', algorithm: 'hmac-sha256' as const, secret: Buffer.alloc(32, 7).toString('base64') };

function brokerLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

async function startBroker(knot: Knot, secret = KEY.secret) {
  const captured = brokerLog();
  const broker = await startTestBroker(
    { reverseDns: { server: '127.0.0.1', port: knot.port, zone: ZONE, tsig: { ...KEY, secret }, timeoutMs: 2000 } },
    { log: captured.log },
  );
  return { broker, lines: captured.lines };
}

/** A DNS server and a broker of the test's own (each broker's fresh database hands out the same prefixes). */
async function lab(fn: (l: { knot: Knot; broker: TestBroker; lines: string[] }) => Promise<void>, secret?: string) {
  const knot = await startKnot({ zone: ZONE, key: KEY });
  try {
    const { broker, lines } = await startBroker(knot, secret);
    try {
      await fn({ knot, broker, lines });
    } finally {
      await broker.stop();
    }
  } finally {
    await knot.stop();
  }
}

function routerSession(b: TestBroker, username: string, opts: { dnsServers?: string[]; prefixLength?: number } = {}) {
  return runSession({
    transport: 'udp',
    port: b.ports.udp,
    auth: { mechanism: 'PLAIN', username, password: 'pw-' + username },
    prefixLength: opts.prefixLength ?? 56,
    ...(opts.dnsServers ? { dnsServers: opts.dnsServers } : {}),
  });
}

describe('reverse DNS delegation with Knot DNS', { skip: haveKnot() ? false : 'needs knotd and kdig' }, () => {
  it('delegates the prefix to the name servers a session names, replaces them, and moves them with the prefix', async () => {
    await lab(async ({ knot, broker }) => {
      await broker.addUser('alice', 'pw-alice');
      const first = await routerSession(broker, 'alice', { dnsServers: ['NS1.Example.NET.', 'ns2.example.net'] });
      assert.equal(first.createStatus, 200, first.raw.join('|'));
      const [name56] = reverseZoneNames(first.offer!.prefix!.address, 56);
      assert.deepEqual(await knot.ns(name56!), ['ns1.example.net', 'ns2.example.net']);

      const again = await routerSession(broker, 'alice', { dnsServers: ['ns3.example.org'] });
      assert.equal(again.createStatus, 200);
      assert.deepEqual(await knot.ns(name56!), ['ns3.example.org']);

      // a session without dns_server keeps the delegation; a /48 replaces the /56 and the delegation follows it
      const wider = await routerSession(broker, 'alice', { prefixLength: 48 });
      assert.equal(wider.createStatus, 200);
      const [name48] = reverseZoneNames(wider.offer!.prefix!.address, 48);
      assert.deepEqual(await knot.ns(name48!), ['ns3.example.org']);
      if (name48 !== name56) assert.deepEqual(await knot.ns(name56!), []);
    });
  });

  it("tspc's dns_server (gogoc's key) gets the prefix delegated", async () => {
    await lab(async ({ knot, broker }) => {
      await broker.addUser('tess', 'pw-tess');
      const { config } = resolveConfig({
        server: `127.0.0.1:${broker.ports.udp}`,
        userid: 'tess',
        passwd: 'pw-tess',
        tunnel_mode: 'v6udpv4',
        host_type: 'router',
        prefixlen: '56',
        dns_server: 'ns1.example.net:ns2.example.net',
      });
      const n = await negotiate(config, config.server, silentLog);
      const [name] = reverseZoneNames(n.offer.prefix!.address, 56);
      assert.deepEqual(await knot.ns(name!), ['ns1.example.net', 'ns2.example.net']);
    });
  });

  it('answers 509 for name servers it will not publish, and publishes nothing', async () => {
    await lab(async ({ knot, broker, lines }) => {
      await broker.addUser('bob', 'pw-bob');
      for (const bad of [
        ['ns.0.f.8.b.d.0.1.0.0.2.ip6.arpa'], // inside the reverse tree: glue games
        ['192.0.2.53'],
        ['bad_name.example.net'],
        ['a.example.net', 'b.example.net', 'c.example.net', 'd.example.net', 'e.example.net'], // over the limit of 4
      ]) {
        const r = await routerSession(broker, 'bob', { dnsServers: bad });
        assert.equal(r.createStatus, 509, `${bad.join(',')}: ${r.raw.join('|')}`);
      }
      const ok = await routerSession(broker, 'bob');
      assert.equal(ok.createStatus, 200);
      const [name] = reverseZoneNames(ok.offer!.prefix!.address, 56);
      assert.deepEqual(await knot.ns(name!), []);
      assert.ok(
        lines.some((l) => l.includes('lies inside a reverse tree')),
        'the reason is in the log',
      );
    });
  });

  it('answers 509 when the server refuses the signature, and says why in the log', async () => {
    await lab(async ({ broker, lines }) => {
      await broker.addUser('carol', 'pw-carol');
      const r = await routerSession(broker, 'carol', { dnsServers: ['ns1.example.net'] });
      assert.equal(r.createStatus, 509, r.raw.join('|'));
      assert.ok(
        lines.some((l) => l.includes('reverse DNS update failed') && l.includes('BADSIG')),
        lines.join(''),
      );
      assert.equal(broker.broker.liveTunnels().length, 0, 'no tunnel was left behind');
    }, Buffer.alloc(32, 9).toString('base64'));
  });

  it('keeps a wish made while the server was down and publishes it once the server is back', async () => {
    const down = await startKnot({ zone: ZONE, key: KEY });
    const port = down.port;
    const { broker } = await startBroker(down);
    try {
      await broker.addUser('dave', 'pw-dave');
      await down.stop();
      const r = await routerSession(broker, 'dave', { dnsServers: ['ns1.example.net'] });
      assert.equal(r.createStatus, 509);
      const back = await startKnot({ zone: ZONE, key: KEY, port });
      try {
        await broker.broker.reverseDns.reconcile();
        const [name] = reverseZoneNames((await broker.store.findAllocation(1, 'delegation'))!.prefix, 56);
        assert.deepEqual(await back.ns(name!), ['ns1.example.net']);
      } finally {
        await back.stop();
      }
    } finally {
      await broker.stop();
    }
  });

  it('withdraws a deleted account’s delegation', async () => {
    await lab(async ({ knot, broker }) => {
      const id = await broker.addUser('erin', 'pw-erin');
      const r = await routerSession(broker, 'erin', { dnsServers: ['ns1.example.net'] });
      assert.equal(r.createStatus, 200);
      const [name] = reverseZoneNames(r.offer!.prefix!.address, 56);
      assert.deepEqual(await knot.ns(name!), ['ns1.example.net']);
      await broker.broker.endAccountTunnels(id, 'account_deleted');
      await broker.store.deleteAccount(id);
      await broker.broker.reverseDns.reconcile();
      assert.deepEqual(await knot.ns(name!), []);
      assert.deepEqual(await broker.store.pendingReverseDelegations(10), [], 'nothing left to do');
    });
  });
});
