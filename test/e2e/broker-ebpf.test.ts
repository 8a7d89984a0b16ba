/** End to end through a real `tsp-broker serve` with `dataplane.driver: auto` on a host where the eBPF fast path
 *  can run (test/helpers/broker-lab.ts has the topology): auto picks ebpf and says so, clients negotiated over TSP
 *  carry traffic through the programs (the TUN device is not crossed), and after kill -9 the next start takes
 *  over the filters the dead broker left on the uplinks. Needs root, /dev/net/tun and the fast path's build
 *  (CI installs it: there a missing build fails); skipped otherwise. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ebpfUnavailable } from '../../src/dataplane/ebpf-addon.js';
import { BrokerLab, INET_HOST, eventuallyAsync, type LabClient, type RunningClient } from '../helpers/broker-lab.js';

const rootless = process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'needs root and /dev/net/tun' : undefined;
const skip = rootless ?? (process.env.CI === 'true' ? undefined : ebpfUnavailable());
const PASSWORD = 'correct horse battery';

describe('broker end to end on the eBPF fast path', { skip: skip ?? false }, () => {
  let lab: BrokerLab;
  const ns: Record<string, LabClient> = {};
  const client: Record<string, RunningClient> = {};

  before(async () => {
    lab = await BrokerLab.create({ dataplane: { driver: 'auto' } });
    for (const name of ['alice', 'carol']) await lab.addUser(name, PASSWORD);
    ns.a = await lab.natClient('client-a');
    ns.c = await lab.directClient('client-c');
    await lab.startBroker();
    client.a = await lab.startClient(ns.a, { type: 'v6udpv4', username: 'alice', password: PASSWORD });
    client.c = await lab.startClient(ns.c, { type: 'v6v4', username: 'carol', password: PASSWORD });
  });

  after(async () => {
    await lab?.cleanup();
  });

  /** Interfaces of the broker's namespace that carry our decap filter (handle 0x7473), with how many each. */
  async function decapFilters(): Promise<Map<string, number>> {
    const links = JSON.parse(await lab.broker.ip('-j', 'link', 'show')) as { ifname: string }[];
    const out = new Map<string, number>();
    for (const { ifname } of links) {
      const r = await lab.broker.exec('tc', ['filter', 'show', 'dev', ifname, 'ingress']);
      const n = r.stdout.match(/handle 0x7473/g)?.length ?? 0;
      if (n > 0) out.set(ifname, n);
    }
    return out;
  }

  it('auto picks the eBPF fast path and logs it', () => {
    assert.match(lab.process!.stdout, /data plane: ebpf/);
    assert.match(lab.process!.stdout, /"dataplane":"ebpf"|dataplane: ?"?ebpf/);
  });

  it('v6udpv4 and v6v4 clients reach the internet and back without crossing the TUN device', async () => {
    const before = await lab.broker.stats('tsp0');
    for (const key of ['a', 'c']) {
      assert.equal(await lab.ping(ns[key]!.ns, INET_HOST), true, `client ${key} -> internet`);
      assert.equal(await lab.ping(lab.inet, client[key]!.address), true, `internet -> client ${key}`);
    }
    const after = await lab.broker.stats('tsp0');
    // 12 packets went up the tunnels and 12 down: the programs decapsulated the first into the kernel, and
    // redirected the second to the uplink at the TUN's egress, before its driver counts them. The kernel's own
    // chatter on a new link (router solicitations, MLD) may still leave through the TUN.
    assert.equal(after.rxPackets, before.rxPackets, 'nothing written into tsp0 by the addon');
    assert.ok(after.txPackets - before.txPackets < 12, `tsp0 sent ${after.txPackets - before.txPackets}`);
  });

  it("kill -9, start again: the dead broker's filters are replaced, one per uplink, and traffic flows", async () => {
    const attached = await decapFilters();
    assert.ok(attached.size > 0 && [...attached.values()].every((n) => n === 1), JSON.stringify([...attached]));
    await lab.killBroker();
    assert.deepEqual(await decapFilters(), attached, 'left behind by the killed broker');
    const restarted = await lab.startBroker();
    await restarted.waitFor('restored live tunnels into the data plane');
    assert.deepEqual(await decapFilters(), attached, 'replaced, not added beside');
    await eventuallyAsync(() => lab.ping(lab.inet, client.a!.address), 'internet -> client a after the restart');
    assert.equal(await lab.ping(ns.a!.ns, INET_HOST), true, 'client a -> internet after the restart');
    await lab.process!.kill(); // SIGTERM: a clean stop takes the filters away
    assert.deepEqual(await decapFilters(), new Map(), 'none left after a clean stop');
  });
});
