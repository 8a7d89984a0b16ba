/** End to end through a real `tsp-broker serve` process on each data-plane driver (native, and ebpf: the TC
 *  programs in front of the addon), clients negotiating over TSP (test/helpers/broker-lab.ts has the topology):
 *
 *    A  behind the NAT, v6udpv4, router mode (/56)      C  direct, v6v4
 *    B  behind the same NAT address, v6udpv4            E  direct, v6anyv4 (so v6v4)
 *    D  behind the NAT, v6anyv4 (so v6udpv4)
 *
 *  Every client keeps its tunnel alive with ping6 to the offer's keepalive address. Needs root and
 *  /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  NAT_OUTSIDE,
  firstHost,
  labSkip,
  type LabClient,
  type LabDriver,
  type RunningClient,
} from '../helpers/broker-lab.js';
import { ipv6Udp } from '../helpers/packets.js';

const PASSWORD = 'correct horse battery';

for (const driver of LAB_DRIVERS) packetPaths(driver);

function packetPaths(driver: LabDriver): void {
  describe(`broker end to end: packet paths over TSP (${driver})`, { skip: labSkip(driver) }, () => {
    let lab: BrokerLab;
    const ns: Record<string, LabClient> = {};
    const client: Record<string, RunningClient> = {};

    before(async () => {
      lab = await BrokerLab.create({ dataplane: { driver } });
      for (const name of ['alice', 'bob', 'carol', 'dave', 'erin']) await lab.addUser(name, PASSWORD);
      ns.a = await lab.natClient('client-a');
      ns.b = await lab.natClient('client-b');
      ns.d = await lab.natClient('client-d');
      ns.c = await lab.directClient('client-c');
      ns.e = await lab.directClient('client-e');
      await lab.startBroker();
      const auth = (username: string) => ({ username, password: PASSWORD });
      client.a = await lab.startClient(ns.a!, { type: 'v6udpv4', prefixLength: 56, ...auth('alice') });
      client.b = await lab.startClient(ns.b!, { type: 'v6udpv4', ...auth('bob') });
      client.c = await lab.startClient(ns.c!, { type: 'v6v4', ...auth('carol') });
      client.d = await lab.startClient(ns.d!, { type: 'v6anyv4', ...auth('dave') });
      client.e = await lab.startClient(ns.e!, { type: 'v6anyv4', ...auth('erin') });
    });

    after(async () => {
      await lab?.cleanup();
    });

    /** Runs `pings` (3 echoes each way through one tunnel) and checks who decapsulated: the addon, which writes
     *  each packet into the TUN, on native; the programs, which hand them to the kernel on the uplink, on ebpf. */
    async function carried(pings: () => Promise<void>): Promise<void> {
      const before = await lab.tunWrites();
      await pings();
      const written = (await lab.tunWrites()) - before;
      if (driver === 'ebpf') assert.equal(written, 0, 'decapsulated in the kernel, nothing written into the TUN');
      else assert.ok(written >= 6, `the addon wrote ${written} packets into the TUN`);
    }

    it('v6udpv4 through the NAT: ping6 both ways', async () => {
      assert.equal(client.a!.offer.type, 'v6udpv4');
      assert.equal(client.a!.offer.clientIpv4, NAT_OUTSIDE, 'the broker saw the NAT address');
      await carried(async () => {
        assert.equal(await lab.ping(ns.a!.ns, INET_HOST), true, 'client -> internet');
        assert.equal(await lab.ping(lab.inet, client.a!.address), true, 'internet -> client');
      });
    });

    it('v6v4 without NAT: ping6 both ways over protocol 41', async () => {
      assert.equal(client.c!.offer.type, 'v6v4');
      await carried(async () => {
        assert.equal(await lab.ping(ns.c!.ns, INET_HOST), true, 'client -> internet');
        assert.equal(await lab.ping(lab.inet, client.c!.address), true, 'internet -> client');
      });
    });

    it('v6anyv4 picks v6udpv4 behind the NAT and v6v4 without it; both carry ping6 both ways', async () => {
      assert.equal(client.d!.offer.type, 'v6udpv4');
      assert.equal(client.e!.offer.type, 'v6v4');
      for (const k of ['d', 'e']) {
        assert.equal(await lab.ping(ns[k]!.ns, INET_HOST), true, `${k}: client -> internet`);
        assert.equal(await lab.ping(lab.inet, client[k]!.address), true, `${k}: internet -> client`);
      }
    });

    it('router mode: an address inside the delegated prefix is reachable, and may be used as source', async () => {
      const prefix = client.a!.offer.prefix;
      assert.ok(prefix && prefix.length === 56, 'a /56 was delegated');
      const inside = firstHost(prefix.address);
      assert.equal(await lab.ping(lab.inet, inside), true, 'internet -> delegated prefix');
      assert.equal(await lab.ping(ns.a!.ns, INET_HOST, ['-I', inside]), true, 'sourced from the prefix');
    });

    it('two clients behind the same NAT address each get their own traffic', async () => {
      const tunnels = await lab.tunnelList();
      const live = (username: string) => tunnels.find((t) => t.username === username && t.state === 'established')!;
      const [a, b] = [live('alice'), live('bob')];
      assert.equal(a.clientIpv4, NAT_OUTSIDE);
      assert.equal(b.clientIpv4, NAT_OUTSIDE);
      assert.notEqual(a.clientPort, b.clientPort, 'the NAT told them apart by port');
      // Only the addressee answers: a packet for B delivered to A would find no one (A does not forward).
      assert.equal(await lab.ping(lab.inet, client.b!.address), true, 'internet -> B');
      assert.equal(await lab.ping(lab.inet, client.a!.address), true, 'internet -> A');
    });

    it('client to client (hairpin): behind the same NAT, and v6v4 to v6udpv4', async () => {
      assert.equal(await lab.ping(ns.a!.ns, client.b!.address), true, 'A -> B');
      assert.equal(await lab.ping(ns.c!.ns, client.a!.address), true, 'C (v6v4) -> A (v6udpv4)');
    });

    it("the host's ICMPv6 errors reach both ends though the TUN has no global address", async () => {
      // An expiring hop limit goes to the kernel (the addon does not decrement to 0): Time Exceeded to the client.
      const hop = await ns.a!.ns.exec('ping', ['-6', '-c', '1', '-t', '1', '-W', '2', INET_HOST]);
      assert.match(hop.stdout, /From 2001:db8:100::1 .*Time exceeded/);
      // Bigger than the TUN's MTU (1280): Packet Too Big to the internet host, so its path MTU adapts.
      const big = await lab.inet.exec('ping', ['-6', '-c', '1', '-s', '1400', '-W', '2', client.a!.address]);
      assert.match(big.stdout, /Packet too big: mtu=1280/);
    });

    it('drops a spoofed inner source and /metrics counts it by reason', async () => {
      await ns.a!.ns.ip('-6', 'addr', 'add', '2001:db8:dead::1/128', 'dev', 'lo');
      const before = await lab.drops('spoofed_source');
      assert.equal(await lab.ping(ns.a!.ns, INET_HOST, ['-I', '2001:db8:dead::1']), false);
      const after = await lab.drops('spoofed_source');
      assert.ok(after >= before + 3, `spoofed_source ${before} -> ${after}`);
    });

    it('drops data from an unknown endpoint and /metrics counts it', async () => {
      const before = await lab.drops('unknown_endpoint');
      // C's own address and inner source, but over UDP from a port no tunnel has (C's tunnel is v6v4).
      const packet = ipv6Udp(client.c!.address, INET_HOST, 100).toString('hex');
      await ns.c!.ns.run(process.execPath, [
        '-e',
        `const s=require('dgram').createSocket('udp4');` +
          `s.send(Buffer.from('${packet}','hex'),3653,'${ns.c!.server}',()=>s.close())`,
      ]);
      const deadline = Date.now() + 5_000;
      while ((await lab.drops('unknown_endpoint')) < before + 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      assert.equal(await lab.drops('unknown_endpoint'), before + 1);
    });

    it('carries TCP through the tunnel: 4 MB each way arrive intact', async () => {
      const server = lab.inet.spawn(process.execPath, [
        '-e',
        `require('net').createServer((s)=>s.pipe(s)).listen(5001,'${INET_HOST}',()=>console.log('listening'));`,
      ]);
      await server.waitFor('listening');
      const result = await ns.a!.ns.exec(
        process.execPath,
        [
          '-e',
          `const net=require('net'),crypto=require('crypto');` +
            `const data=crypto.randomBytes(4<<20);const want=crypto.createHash('sha256').update(data).digest('hex');` +
            `const h=crypto.createHash('sha256');let n=0;` +
            `const s=net.connect(5001,'${INET_HOST}',()=>{s.write(data);});` +
            `s.on('data',(d)=>{h.update(d);n+=d.length;if(n>=data.length){s.end();` +
            `const got=h.digest('hex');console.log(got===want?'OK '+got:'MISMATCH');process.exit(got===want?0:1);}});` +
            `s.on('error',(e)=>{console.log('ERR '+e.message);process.exit(2);});` +
            `setTimeout(()=>{console.log('TIMEOUT '+n);process.exit(3);},40000);`,
        ],
        { timeoutMs: 60_000 },
      );
      await server.kill();
      assert.match(result.stdout, /^OK [0-9a-f]{64}/, `client said: ${result.stdout} ${result.stderr}`);
    });
  });
}
