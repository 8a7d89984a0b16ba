/** Bad input through a real uplink, on each data-plane driver: a `tsp-broker serve` lab (test/helpers/broker-lab.ts)
 *  with two clients linked straight to the broker (v6udpv4 with a delegated /56, and v6v4), from whose namespaces
 *  whole IPv4 packets go out on a raw socket (tsp_bench's generator): truncated and mis-sized inner packets, wrong
 *  version nibbles, IPv4 options, fragments, spoofed and link-local inner sources, unknown endpoints, hop limits 0
 *  and 1, a corrupted outer UDP checksum, and seeded mutants of a good packet. tcpdump on the internet host's link
 *  sees what the broker forwarded: only packets that should pass, each a copy of one sent (hop limit one less),
 *  and every one that should. Drops are counted by reason in /metrics. On ebpf the TC programs meet every packet
 *  first, so this is their bad-input test on a real veth uplink. Needs root, /dev/net/tun and tcpdump (and for ebpf
 *  the fast path's build; CI installs all). */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  eventuallyAsync,
  firstHost,
  labSkip,
  type LabClient,
  type LabDriver,
  type RunningClient,
} from '../helpers/broker-lab.js';
import { mutate, random } from '../helpers/mutants.js';
import { loadBenchAddon } from '../helpers/native-bench.js';
import type { NetnsProcess } from '../helpers/netns.js';
import { ipv4Bytes, ipv6UdpWith, udpIpv4Checksum } from '../helpers/packets.js';

const PASSWORD = 'correct horse battery';
const TSP_PORT = 3653;
const SINK_PORT = 9999;
const SEED = 0x13ebf;
const MUTANTS = 240;

interface Outer {
  options?: Buffer;
  fragment?: number;
  id?: number;
}

/** A whole IPv4 packet for the raw socket (the kernel fills in the header checksum). */
function ipv4(src: string, dst: string, protocol: number, body: Buffer, extra: Outer = {}): Buffer {
  const options = extra.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + options.length);
  h[0] = 0x40 | ((20 + options.length) / 4);
  h.writeUInt16BE(h.length + body.length, 2);
  h.writeUInt16BE(extra.id ?? 0x4242, 4);
  h.writeUInt16BE(extra.fragment ?? 0, 6);
  h[8] = 64;
  h[9] = protocol;
  ipv4Bytes(src).copy(h, 12);
  ipv4Bytes(dst).copy(h, 16);
  options.copy(h, 20);
  return Buffer.concat([h, body]);
}

/** The IPv6 packets in a pcap file (Ethernet link type), complete records only. */
function capturedIpv6(file: string): Buffer[] {
  const bytes = readFileSync(file);
  const out: Buffer[] = [];
  for (let at = 24; at + 16 <= bytes.length;) {
    const length = bytes.readUInt32LE(at + 8);
    if (at + 16 + length > bytes.length) break;
    const frame = bytes.subarray(at + 16, at + 16 + length);
    if (frame.length > 14 && frame.readUInt16BE(12) === 0x86dd) out.push(Buffer.from(frame.subarray(14)));
    at += 16 + length;
  }
  return out;
}

/** What the far side may see of a sent inner packet: hop limit one less, trimmed to its payload length. */
function forwardedForm(inner: Buffer): string | undefined {
  if (inner.length < 40 || inner[0]! >> 4 !== 6 || inner[7]! < 2) return undefined;
  const whole = 40 + inner.readUInt16BE(4);
  if (whole > inner.length) return undefined;
  const copy = Buffer.from(inner.subarray(0, whole));
  copy[7] = copy[7]! - 1;
  return copy.toString('hex');
}

for (const driver of LAB_DRIVERS) uplinkBadInput(driver);

function uplinkBadInput(driver: LabDriver): void {
  describe(`bad input through a real uplink (${driver})`, { skip: labSkip(driver) }, () => {
    let lab: BrokerLab;
    let udpNs: LabClient;
    let p41Ns: LabClient;
    let a: RunningClient;
    let c: RunningClient;
    let prefixHost: string;
    let captures = 0;

    before(async () => {
      lab = await BrokerLab.create({ dataplane: { driver } });
      await lab.addUser('ursula', PASSWORD);
      await lab.addUser('victor', PASSWORD);
      // Linked before the broker starts, so on ebpf these links are uplinks with the decap program.
      udpNs = await lab.directClient('fz-udp');
      p41Ns = await lab.directClient('fz-41');
      await lab.startBroker();
      a = await lab.startClient(udpNs, { type: 'v6udpv4', prefixLength: 56, username: 'ursula', password: PASSWORD });
      c = await lab.startClient(p41Ns, { type: 'v6v4', username: 'victor', password: PASSWORD });
      prefixHost = firstHost(a.offer.prefix!.address);
    });

    after(async () => {
      await lab?.cleanup();
    });

    /** An inner IPv6/UDP packet to the internet host's sink port carrying `tag`. */
    const inner = (tag: string, src = a.address, hopLimit = 64) =>
      ipv6UdpWith(src, INET_HOST, Buffer.from(tag), { src: 5000, dst: SINK_PORT }, hopLimit);
    /** UDP from a's endpoint (or `port`) to the TSP port; checksum 0 (none) unless given. */
    const overUdp = (payload: Buffer, opts: { port?: number; checksum?: 'right' | 'wrong'; length?: number } = {}) => {
      const udp = Buffer.alloc(8 + payload.length);
      udp.writeUInt16BE(opts.port ?? a.localPort, 0);
      udp.writeUInt16BE(TSP_PORT, 2);
      udp.writeUInt16BE(opts.length ?? udp.length, 4);
      payload.copy(udp, 8);
      if (opts.checksum) {
        const right = udpIpv4Checksum(udpNs.ipv4, udpNs.server, udp);
        udp.writeUInt16BE(opts.checksum === 'right' ? right : right ^ 0x0101, 6);
      }
      return udp;
    };
    const fromA = (udp: Buffer, extra: Outer = {}) => ipv4(udpNs.ipv4, udpNs.server, 17, udp, extra);
    const over41 = (payload: Buffer, ns = p41Ns) => ipv4(ns.ipv4, ns.server, 41, payload);

    /** tcpdump on the internet host's link: what the broker forwarded there (its own and link-local excepted). */
    async function capture(): Promise<{ packets(): Buffer[]; stop(): Promise<void> }> {
      const file = path.join(lab.dir, `uplink-${++captures}.pcap`);
      const filter = `ip6 and not src host ${INET_HOST} and not src host 2001:db8:100::1 and not src net fe80::/10`;
      const p: NetnsProcess = lab.inet.spawn('tcpdump', ['-i', 'to-broker', '-n', '-U', '-s', '0', '-w', file, filter]);
      await eventuallyAsync(async () => p.stderr.includes('listening on'), 'tcpdump to listen', 10_000);
      return { packets: () => capturedIpv6(file), stop: () => p.kill() };
    }

    /** Sends `packets` from `ns` (each at least once), then a good one, and waits until the capture has it. */
    async function send(ns: LabClient, packets: Buffer[], seen: () => Buffer[]): Promise<void> {
      await loadBenchAddon().runGenerator({ netns: ns.ns.name, family: 4, packets, seconds: 1e-6 });
      const marker = inner(`marker ${Date.now()}`);
      await loadBenchAddon().runGenerator({
        netns: udpNs.ns.name,
        family: 4,
        packets: [fromA(overUdp(marker))],
        seconds: 1e-6,
      });
      const want = forwardedForm(marker);
      await eventuallyAsync(async () => seen().some((p) => p.toString('hex') === want), 'the marker at the far side');
    }

    /** The addresses tunnel traffic may come from: a's /128 and /56, c's /128. */
    const allowedSource = (packet: Buffer) => {
      const source = ipaddr.fromByteArray([...packet.subarray(8, 24)]) as ipaddr.IPv6;
      const prefix = a.offer.prefix!;
      return (
        [a.address, c.address].includes(source.toString()) ||
        source.match(ipaddr.IPv6.parse(prefix.address), prefix.length)
      );
    };

    it('forwards the good packets intact, drops and counts the bad ones, forwards none wrongly', async () => {
      const pass = [
        inner('pass udp'),
        inner('pass from the prefix', prefixHost),
        inner('pass with a right checksum'),
        inner('pass with options'),
        inner('pass in fragments'),
      ];
      const whole = overUdp(pass[4]!);
      const fromUdpClient = [
        fromA(overUdp(pass[0]!)),
        fromA(overUdp(pass[1]!)),
        fromA(overUdp(pass[2]!, { checksum: 'right' })),
        fromA(overUdp(pass[3]!), { options: Buffer.from([1, 1, 1, 0]) }),
        fromA(whole.subarray(0, 48), { fragment: 0x2000, id: 0x5151 }), // MF, offset 0
        fromA(whole.subarray(48), { fragment: 48 / 8, id: 0x5151 }),
        fromA(overUdp(inner('spoofed', '2001:db8:dead::1'))),
        fromA(overUdp(inner('link-local', 'fe80::1'))),
        fromA(overUdp(inner('unknown port'), { port: a.localPort + 1 })),
        ipv4(udpNs.ipv4, udpNs.server, 41, inner('41 from a v6udpv4 endpoint')),
        fromA(overUdp(inner('hop limit 0', a.address, 0))),
        fromA(overUdp(inner('hop limit 1', a.address, 1))),
        fromA(overUdp(inner('truncated').subarray(0, 30))),
        fromA(overUdp(inner('claims more than it has').fill(0xff, 4, 5))), // payload length 0xff..
        fromA(overUdp(Buffer.concat([Buffer.from([0x46]), inner('version 4').subarray(1)]))),
        fromA(overUdp(inner('lonely fragment')), { fragment: 0x2000, id: 0x5252 }),
        fromA(overUdp(inner('wrong udp checksum'), { checksum: 'wrong' })),
        fromA(overUdp(inner('udp length past the end'), { length: 8 + inner('udp length past the end').length + 8 })),
      ];
      const from41Client = [
        over41(inner('pass 41', c.address)),
        over41(inner('spoofed 41', a.address)),
        over41(inner('41 truncated', c.address).subarray(0, 30)),
      ];
      const drops = async () =>
        Object.fromEntries(
          await Promise.all(
            ['spoofed_source', 'link_local_source', 'unknown_endpoint', 'malformed'].map(
              async (r) => [r, await lab.drops(r)] as const,
            ),
          ),
        );
      const before = await drops();
      const seen = await capture();
      try {
        await send(p41Ns, from41Client, seen.packets);
        await send(udpNs, fromUdpClient, seen.packets);
        const wanted = new Set([...pass, inner('pass 41', c.address)].map((p) => forwardedForm(p)!));
        const got = seen.packets().filter((p) => !p.subarray(48).toString().startsWith('marker'));
        for (const p of got) {
          assert.ok(allowedSource(p), `forwarded from ${ipaddr.fromByteArray([...p.subarray(8, 24)]).toString()}`);
          assert.ok(wanted.has(p.toString('hex')), `forwarded: ${JSON.stringify(p.subarray(48).toString())}`);
        }
        const arrived = new Set(got.map((p) => p.toString('hex')));
        for (const p of [...pass, inner('pass 41', c.address)])
          assert.ok(arrived.has(forwardedForm(p)!), `missing at the far side: ${p.subarray(48).toString()}`);
      } finally {
        await seen.stop();
      }
      await eventuallyAsync(
        async () => {
          const now = await drops();
          return (
            now.spoofed_source! >= before.spoofed_source! + 2 &&
            now.link_local_source! >= before.link_local_source! + 1 &&
            now.unknown_endpoint! >= before.unknown_endpoint! + 2 &&
            now.malformed! >= before.malformed! + 3
          );
        },
        `the drops counted by reason (before: ${JSON.stringify(before)})`,
      );
    });

    if (driver === 'ebpf')
      it('carries datagrams with a right UDP checksum in the programs, whatever their length', async () => {
        // Odd and even lengths across the programs' 256-byte checksum loads; each must pass the check in the
        // kernel (not the addon: no TUN write) and arrive intact.
        const packets = [1, 250, 511, 701, 1100].map((n) => inner(`right checksum ${n} `.padEnd(n, 'x')));
        const tunWrites = await lab.tunWrites();
        const seen = await capture();
        try {
          await send(
            udpNs,
            packets.map((p) => fromA(overUdp(p, { checksum: 'right' }))),
            seen.packets,
          );
          const arrived = new Set(seen.packets().map((p) => p.toString('hex')));
          for (const p of packets) assert.ok(arrived.has(forwardedForm(p)!), `${p.length - 48} bytes arrived`);
        } finally {
          await seen.stop();
        }
        assert.equal((await lab.tunWrites()) - tunWrites, 0, 'none left to the addon');
      });

    it(`forwards no mutant wrongly (seed ${SEED.toString(16)})`, async () => {
      const next = random(SEED);
      const addresses = {
        sources: [a.address, c.address, prefixHost, 'fe80::1', '2001:db8:dead::1', INET_HOST],
        destinations: [INET_HOST, c.address, a.address, prefixHost, a.offer.serverIpv6, '2001:db8:100::1'],
      };
      const base = inner('mutant base, long enough to be cut in many places');
      const mutants = Array.from({ length: MUTANTS }, () => mutate(base, next, addresses));
      const seen = await capture();
      try {
        await send(
          udpNs,
          mutants.map((m) => fromA(overUdp(m))),
          seen.packets,
        );
        const sent = new Set(mutants.map((m) => forwardedForm(m)).filter((f) => f !== undefined));
        for (const p of seen.packets().filter((x) => !x.subarray(48).toString().startsWith('marker'))) {
          assert.ok(allowedSource(p), `forwarded from ${ipaddr.fromByteArray([...p.subarray(8, 24)]).toString()}`);
          assert.ok(sent.has(p.toString('hex')), `forwarded a packet no mutant was: ${p.toString('hex')}`);
        }
      } finally {
        await seen.stop();
      }
    });
  });
}
