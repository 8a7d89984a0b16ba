/** End to end through a real `tsp-broker serve` process on each data-plane driver (native, and ebpf: the TC
 *  programs in front of the addon): how tunnels end and survive.
 *  Keepalive 2 s, idle after 3 intervals (at least 5 s), so a silent client's tunnel ends within seconds
 *  (test/helpers/broker-lab.ts has the topology and the configuration). Both clients sit behind the NAT and
 *  use v6udpv4:
 *
 *    frank  silent (no keepalives), router mode: expires, then logs in again and gets the same addresses
 *    grace  keeps its tunnel alive: the broker is killed with SIGKILL under traffic and started again
 *    heidi  sends no keepalives but data: its packets alone (on ebpf, carried by the programs) keep it live
 *
 *  Needs root and /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  canonical,
  eventuallyAsync,
  labSkip,
  type LabClient,
  type LabDriver,
} from '../helpers/broker-lab.js';

const PASSWORD = 'correct horse battery';

for (const driver of LAB_DRIVERS) lifecycle(driver);

function lifecycle(driver: LabDriver): void {
  describe(`broker end to end: expiry and restart (${driver})`, { skip: labSkip(driver) }, () => {
    let lab: BrokerLab;
    let frankNs: LabClient;
    let graceNs: LabClient;

    before(async () => {
      lab = await BrokerLab.create({ dataplane: { driver } });
      await lab.addUser('frank', PASSWORD);
      await lab.addUser('grace', PASSWORD);
      frankNs = await lab.natClient('client-f');
      graceNs = await lab.natClient('client-g');
      await lab.startBroker();
    });

    after(async () => {
      await lab?.cleanup();
    });

    it('a silent client expires (end reason idle, route gone); logging in again gives the same addresses', async () => {
      const plan = { type: 'v6udpv4' as const, username: 'frank', password: PASSWORD, prefixLength: 56 };
      const silent = await lab.startClient(frankNs, { ...plan, silent: true });
      assert.equal(await lab.ping(lab.inet, silent.address), true, 'up at first');
      const tunnelId = (await lab.tunnelList()).find((t) => t.username === 'frank' && t.state === 'established')!.id;

      // 3 intervals of 2 s, at least 5 s: ended within a few sweeps (one every 1.25 s) after that.
      await eventuallyAsync(
        async () => (await lab.tunnelList()).some((t) => t.id === tunnelId && t.state === 'ended'),
        'the idle tunnel to end',
        20_000,
      );
      const ended = (await lab.tunnelList()).find((t) => t.id === tunnelId)!;
      assert.equal(ended.endReason, 'idle');

      const noRoute = await lab.drops('no_route');
      assert.equal(await lab.ping(lab.inet, silent.address), false, 'nothing forwards to it any more');
      assert.ok((await lab.drops('no_route')) >= noRoute + 3, 'the data plane found no tunnel for it');

      await silent.stop();
      const again = await lab.startClient(frankNs, plan);
      assert.equal(again.address, silent.address, 'same client address');
      assert.equal(canonical(again.offer.serverIpv6), canonical(silent.offer.serverIpv6), 'same server address');
      assert.deepEqual(
        again.offer.prefix && { ...again.offer.prefix, address: canonical(again.offer.prefix.address) },
        silent.offer.prefix && { ...silent.offer.prefix, address: canonical(silent.offer.prefix.address) },
        'same delegated prefix',
      );
      assert.equal(await lab.ping(lab.inet, again.address), true, 'and it carries traffic');
      await again.stop();
    });

    it('a client without keepalives stays live while it sends data, and its packets are counted', async () => {
      const heidi = await lab.natClient('client-h');
      await lab.addUser('heidi', PASSWORD);
      const silent = await lab.startClient(heidi, {
        type: 'v6udpv4',
        username: 'heidi',
        password: PASSWORD,
        silent: true,
      });
      const row = async () => (await lab.tunnelList()).find((t) => t.username === 'heidi' && t.id === id);
      const id = (await lab.tunnelList()).find((t) => t.username === 'heidi' && t.state === 'established')!.id;
      const tunWrites = await lab.tunWrites();
      // 12 s of echo requests to the internet, twice the idle limit (3 intervals of 2 s): only they keep it live.
      const traffic = await heidi.ns.exec('ping', ['-6', '-q', '-i', '0.5', '-w', '12', INET_HOST], {
        timeoutMs: 20_000,
      });
      assert.match(traffic.stdout, /\b2\d received/, traffic.stdout);
      assert.equal((await row())?.state, 'established', 'still established after twice its idle limit');
      let last: unknown;
      await eventuallyAsync(async () => {
        last = await row();
        return ((last as { rxPackets?: number } | undefined)?.rxPackets ?? 0) >= 20;
      }, 'its packets persisted').catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(last)}`);
      });
      if (driver === 'ebpf')
        assert.ok((await lab.tunWrites()) - tunWrites < 12, 'carried by the programs, not written into the TUN');
      await silent.stop();
    });

    it('kill -9 during traffic, start again: packets flow without renegotiating, counters carry on', async () => {
      const grace = await lab.startClient(graceNs, { type: 'v6udpv4', username: 'grace', password: PASSWORD });
      assert.equal(await lab.ping(lab.inet, grace.address), true, 'up before the crash');
      const live = async () =>
        (await lab.tunnelList()).find((t) => t.username === 'grace' && t.state === 'established');
      // Counters reach the store with each sweep (every 1.25 s here).
      await eventuallyAsync(async () => ((await live())?.rxPackets ?? 0) > 0, 'counters persisted');
      const before = (await live())!;

      const traffic = lab.inet.spawn('ping', ['-6', '-q', '-i', '0.2', '-w', '30', grace.address]);
      await new Promise((r) => setTimeout(r, 1_000));
      await lab.killBroker();
      assert.equal(lab.process!.child.signalCode, 'SIGKILL');
      assert.equal(await lab.ping(lab.inet, grace.address, ['-c', '1', '-W', '1']), false, 'down while stopped');

      const restarted = await lab.startBroker();
      await restarted.waitFor('restored live tunnels into the data plane');
      await eventuallyAsync(() => lab.ping(lab.inet, grace.address), 'internet -> client after the restart');
      assert.equal(await lab.ping(graceNs.ns, INET_HOST), true, 'client -> internet after the restart');
      await traffic.kill();

      assert.equal(grace.process.stdout.match(/"event":"up"/g)?.length, 1, 'the client negotiated once');
      assert.doesNotMatch(restarted.stdout, /session established a tunnel/, 'no new TSP session');
      const tunnels = (await lab.tunnelList()).filter((t) => t.username === 'grace');
      assert.deepEqual(
        tunnels.map((t) => [t.id, t.state]),
        [[before.id, 'established']],
        'still the one tunnel from before the crash',
      );
      await eventuallyAsync(
        async () => ((await live())?.rxPackets ?? 0) > before.rxPackets,
        'counters growing on from the persisted ones',
      );
    });
  });
}
