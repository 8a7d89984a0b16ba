/** @module test/fuzz/records: the input format of the session targets, and its structure-aware mutator.
 *
 *  An input is a list of records, each a 16-bit big-endian length and that many bytes. Record 0 is the
 *  settings (options and the schedule's seed; missing bytes read as 0), the others are messages from the peer
 *  (UDP datagrams with their header, or TCP writes). Decoding is total: a length running past the end takes
 *  what is left, so every byte string is a valid input. */

import type { Mutator } from './engine.js';

export const MAX_RECORD = 0xffff;

export function decodeRecords(input: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < input.length) {
    if (i + 1 >= input.length) {
      out.push(input.subarray(i + 1));
      break;
    }
    const len = (input[i]! << 8) | input[i + 1]!;
    out.push(input.subarray(i + 2, Math.min(input.length, i + 2 + len)));
    i += 2 + len;
  }
  return out;
}

export function encodeRecords(records: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const r of records) {
    const body = r.length > MAX_RECORD ? r.subarray(0, MAX_RECORD) : r;
    parts.push(Uint8Array.of(body.length >> 8, body.length & 0xff), body);
  }
  return Buffer.concat(parts);
}

/** Reads settings bytes; past the end everything is 0. */
export class Settings {
  private i = 0;
  constructor(readonly bytes: Uint8Array) {}
  u8(): number {
    return this.bytes[this.i++] ?? 0;
  }
  u32(): number {
    return ((this.u8() << 24) | (this.u8() << 16) | (this.u8() << 8) | this.u8()) >>> 0;
  }
  /** One of `items`, by the next byte. */
  choose<T>(items: readonly T[]): T {
    return items[this.u8() % items.length]!;
  }
}

/** Record-level mutations (duplicate, drop, swap, split, merge, splice with another input's records, new
 *  settings) around byte-level mutation of single records. */
export function mutateRecords(input: Uint8Array, m: Mutator, maxRecord: number, maxRecords = 64): Uint8Array {
  const rng = m.rng;
  let recs = decodeRecords(input);
  if (recs.length === 0) recs = [new Uint8Array(0)];
  const ops = 1 + rng.small(3);
  for (let k = 0; k < ops; k++) {
    const msgs = recs.length - 1;
    const pickMsg = () => 1 + rng.below(Math.max(1, msgs));
    switch (rng.below(12)) {
      case 0: {
        // new settings (a different schedule, mechanism set, nonce...)
        recs[0] = rng.chance(0.5) ? m.bytes(recs[0]!, 16) : new Uint8Array(12).map(() => rng.below(256));
        break;
      }
      case 1: {
        if (!msgs) break;
        const i = pickMsg();
        recs.splice(i, 0, recs[i]!);
        break;
      }
      case 2: {
        if (!msgs) break;
        recs.splice(pickMsg(), 1);
        break;
      }
      case 3: {
        if (msgs < 2) break;
        const i = 1 + rng.below(msgs - 1);
        [recs[i], recs[i + 1]] = [recs[i + 1]!, recs[i]!];
        break;
      }
      case 4: {
        if (!msgs) break;
        const i = pickMsg();
        const r = recs[i]!;
        const cut = rng.below(r.length + 1);
        recs.splice(i, 1, r.subarray(0, cut), r.subarray(cut));
        break;
      }
      case 5: {
        if (msgs < 2) break;
        const i = 1 + rng.below(msgs - 1);
        recs.splice(i, 2, Buffer.concat([recs[i]!, recs[i + 1]!]));
        break;
      }
      case 6: {
        // another input's messages from some point on, or one of its messages inserted
        const o = decodeRecords(m.other()).slice(1);
        if (!o.length) break;
        if (rng.chance(0.5)) recs = [...recs.slice(0, 1 + rng.below(msgs + 1)), ...o.slice(rng.below(o.length))];
        else recs.splice(1 + rng.below(msgs + 1), 0, rng.pick(o));
        break;
      }
      default: {
        if (!msgs) {
          recs.push(m.bytes(new Uint8Array(0), maxRecord));
          break;
        }
        const i = pickMsg();
        recs[i] = m.bytes(recs[i]!, maxRecord);
      }
    }
  }
  if (recs.length > maxRecords + 1) recs = recs.slice(0, maxRecords + 1);
  return encodeRecords(recs);
}

/** Minimisation candidates: without one message, then each message halved, then settings zeroed. */
export function* shrinkRecords(input: Uint8Array): Iterable<Uint8Array> {
  const recs = decodeRecords(input);
  for (let i = recs.length - 1; i >= 1; i--) yield encodeRecords([...recs.slice(0, i), ...recs.slice(i + 1)]);
  for (let i = 1; i < recs.length; i++) {
    const r = recs[i]!;
    for (let chunk = r.length >> 1; chunk >= 1; chunk >>= 1)
      for (let at = 0; at + chunk <= r.length; at += chunk) {
        const c = [...recs];
        c[i] = Buffer.concat([r.subarray(0, at), r.subarray(at + chunk)]);
        yield encodeRecords(c);
      }
  }
}
