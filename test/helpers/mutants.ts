/** @module test/helpers/mutants: seeded mutations of inner IPv6 packets for the data-plane bad-input tests
 *  (test/unit/dataplane/fast-path.test.ts on loopback, test/e2e/uplink-bad-input.test.ts through a real uplink):
 *  bit flips, truncation, trailing bytes, other sources and destinations, hop limits 0..2, other version
 *  nibbles. The seed goes in the test's name, so a failing run replays. */

import { ipv6Bytes } from './packets.js';

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sources and destinations a mutation may write into the inner header. */
export interface MutationAddresses {
  sources: readonly string[];
  destinations: readonly string[];
}

/** 1 to 3 mutations of a copy of `base`, drawn from `next`. */
export function mutate(base: Buffer, next: () => number, addresses: MutationAddresses): Buffer {
  let p = Buffer.from(base);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
    switch (Math.floor(next() * 7)) {
      case 0: {
        const at = Math.floor(next() * p.length);
        p[at] = p[at]! ^ (1 << Math.floor(next() * 8));
        break;
      }
      case 1:
        p = p.subarray(0, 1 + Math.floor(next() * (p.length - 1)));
        break;
      case 2:
        p = Buffer.concat([p, Buffer.alloc(1 + Math.floor(next() * 16), 0xa5)]);
        break;
      case 3:
        if (p.length >= 24) ipv6Bytes(pick(addresses.sources)).copy(p, 8);
        break;
      case 4:
        if (p.length >= 40) ipv6Bytes(pick(addresses.destinations)).copy(p, 24);
        break;
      case 5:
        if (p.length >= 8) p[7] = pick([0, 1, 2]);
        break;
      default:
        p[0] = (pick([4, 5, 6, 7, 0xf]) << 4) | (p[0]! & 0x0f);
    }
  }
  return p;
}
