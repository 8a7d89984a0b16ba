/** @module test/fuzz/targets/v4v6-packet: the v4v6 packet path of MemoryDataPlane (src/dataplane/memory.ts,
 *  memory-v4v6.ts), the model the addon's engine is held to by the contract suite: inner IPv4 packets decapsulated
 *  from a v4v6 tunnel or an unknown outer source, and IPv4 packets from the TUN to encapsulate. (The addon's
 *  own parser gets the same treatment in C++: native/test/v4v6_test.cc, its seeded sweep under ASan.)
 *
 *  Input: byte 0 picks the way in (0: from tunnel A's outer address, 1: from an unknown one, 2: from the TUN),
 *  the rest is the packet. Invariants: nothing throws; each packet has exactly one outcome (one drop reason, one
 *  TUN write, or one encapsulated packet); what reaches the TUN from A has A's /32 as source and is no longer
 *  than what came in; what is encapsulated goes to the outer address of the tunnel owning its destination, or
 *  back to A as an echo reply whose IPv4 and ICMP checksums verify; a hairpinned packet lost one TTL and kept a
 *  verifying header checksum. */

import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import type { TunnelId } from '../../../src/dataplane/types.js';
import { InvariantError, call, type Target } from '../engine.js';

const A = { outer: '2001:db8:46::a', inner: '192.0.2.2' };
const B = { outer: '2001:db8:46::b', inner: '192.0.2.3' };
const SERVER_V4 = '192.0.2.1';

function plane(): MemoryDataPlane {
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0 }); // never started: channels only
  for (const [id, t] of [
    [1, A],
    [2, B],
  ] as const)
    dp.addTunnel({
      id: id as TunnelId,
      type: 'v4v6',
      client: { address: t.outer, port: 0 },
      serverIpv4: SERVER_V4,
      clientIpv4: t.inner,
    });
  return dp;
}

const ip4 = (p: Buffer, at: number) => [...p.subarray(at, at + 4)].join('.');

function verifies(p: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i + 1 < p.length; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  if (p.length % 2 === 1) sum += p[p.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

function exec(input: Uint8Array): string[] {
  if (input.length === 0) return ['empty'];
  const way = input[0]! % 3;
  const packet = Buffer.from(input.subarray(1));
  const dp = plane();
  const tun: Buffer[] = [];
  const out: { to: string; packet: Buffer }[] = [];
  dp.tun.onPacket((p) => tun.push(p));
  dp.ipip.onPacket((to, p) => out.push({ to, packet: p }));
  const before = dp.readPathCounters();
  call('write', () => {
    if (way === 2) dp.tun.write(packet);
    else dp.ipip.write(way === 0 ? A.outer : '2001:db8:46::c', packet);
  });
  const drops = Object.entries(dp.readDrops()).filter(([, n]) => n > 0);
  if (drops.length + tun.length + out.length !== 1 || drops.some(([, n]) => n !== 1))
    throw new InvariantError(`outcomes: drops ${JSON.stringify(drops)}, tun ${tun.length}, out ${out.length}`);
  for (const p of tun) {
    if (way !== 0 || ip4(p, 12) !== A.inner || p.length > packet.length)
      throw new InvariantError(`a TUN write from way ${way}, source ${ip4(p, 12)}, ${p.length} bytes`);
  }
  const path = dp.readPathCounters();
  for (const { to, packet: p } of out) {
    const owner = ip4(p, 16) === A.inner ? A.outer : ip4(p, 16) === B.inner ? B.outer : undefined;
    if (to !== owner) throw new InvariantError(`sent to ${to} a packet for ${ip4(p, 16)}`);
    const header = (p[0]! & 0x0f) * 4;
    if (path.echo_replies > before.echo_replies && !(verifies(p.subarray(0, header)) && verifies(p.subarray(header))))
      throw new InvariantError('an echo reply whose checksums do not verify');
    if (path.hairpin_packets > before.hairpin_packets) {
      if (p[8] !== packet[8]! - 1) throw new InvariantError(`hairpin TTL ${packet[8]} -> ${p[8]}`);
      if (!verifies(p.subarray(0, header))) throw new InvariantError('a hairpinned header checksum does not verify');
    }
  }
  const outcome = drops[0]?.[0] ?? (tun.length > 0 ? 'tun' : path.echo_replies > 0 ? 'echo' : 'encapsulated');
  return [`way:${way}`, `outcome:${outcome}`];
}

const DICTIONARY = [
  [0x45, 0x00],
  [192, 0, 2, 1],
  [192, 0, 2, 2],
  [192, 0, 2, 3],
  [203, 0, 113, 2],
  [0x08, 0x00],
  [0x01],
  [0x40, 0x00],
  [0x20, 0x00],
].map((b) => Uint8Array.from(b));

export const v4v6PacketTarget: Target = {
  name: 'v4v6-packet',
  description:
    "MemoryDataPlane's v4v6 path: inner IPv4 in from a tunnel or an unknown outer address, IPv4 from the TUN",
  exec,
  dictionary: DICTIONARY,
  maxLength: 1600,
};
