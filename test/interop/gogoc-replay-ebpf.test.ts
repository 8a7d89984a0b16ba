/** The recorded gogoc 1.2 sessions (test/helpers/gogoc-replay.ts) replayed against a broker on the eBPF fast path
 *  (`dataplane.driver: ebpf`), in a network namespace of this test's own: the decap program sits on the loopback,
 *  the uplink the control datagrams arrive on, so every request crosses it before the addon's socket, and every
 *  reply leaves from that socket. Each replay must go as on the in-memory data plane (gogoc-replay.test.ts), and
 *  an accepted tunnel must be in the programs' maps. One broker at a time: each holds the TUN and the filters.
 *  Needs root, /dev/net/tun and the fast path's build (CI installs it: there a missing build fails). */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { EbpfDataPlane } from '../../src/dataplane/ebpf.js';
import { ebpfUnavailable } from '../../src/dataplane/ebpf-addon.js';
import { startTestBroker } from '../helpers/broker.js';
import { recordedNonce, replay } from '../helpers/gogoc-replay.js';
import { loadBenchAddon } from '../helpers/native-bench.js';
import { Topology } from '../helpers/netns.js';
import { loadRecordings } from '../helpers/recordings.js';

const rootless = process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'needs root and /dev/net/tun' : undefined;
const skip = rootless ?? (process.env.CI === 'true' ? undefined : ebpfUnavailable());

describe('gogoc replays on the eBPF fast path', { skip: skip ?? false }, () => {
  if (skip !== undefined) return;
  const recordings = loadRecordings();
  let topology: Topology | undefined;
  after(async () => {
    await topology?.cleanup();
  });

  for (const rec of recordings) {
    it(`replay ${rec.name} (ebpf)`, async () => {
      if (!topology) {
        topology = await Topology.create();
        loadBenchAddon().enterNetns((await topology.namespace('gogoc-ebpf')).name);
      }
      const nonce = recordedNonce(rec);
      const b = await startTestBroker(
        { dataplane: { driver: 'ebpf', tun: 'tsp-gogoc' } },
        nonce ? { newNonce: () => nonce } : {},
      );
      try {
        assert.ok(b.dataplane instanceof EbpfDataPlane, 'the fast path is loaded');
        const decapBefore = b.dataplane.readFastPathStats().decap_packets;
        await b.addUser('bob', 'hunter2');
        await replay(rec, b);
        const live = await b.store.listTunnels({ state: 'established' });
        assert.equal(b.dataplane.fastTunnelCount(), live.items.length, 'accepted tunnels are in the maps');
        assert.equal(b.dataplane.readFastPathStats().decap_packets, decapBefore, 'control is never decapsulated');
      } finally {
        await b.stop();
      }
    });
  }
});
