/** @module dns/wire: the few pieces of the DNS wire format (RFC 1035 §4) that a dynamic update (RFC 2136) with
 *  TSIG (RFC 8945) needs: names, resource records, a message writer, and a reader that walks a reply's sections.
 *  Names are written uncompressed and lower-cased (TSIG signs the canonical form); the reader follows
 *  compression pointers, bounded, since a server may compress its reply. Pure. */

export const TYPE = { SOA: 6, NS: 2, TSIG: 250 } as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE_UPDATE = 5;

/** RCODE names for logs (RFC 1035, 2136, 8945). */
export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};

export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** `example.net` / `example.net.` in wire form, lower-cased. Throws on an empty or over-long label. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  if (trimmed !== '')
    for (const label of trimmed.toLowerCase().split('.')) {
      const b = Buffer.from(label, 'ascii');
      if (b.length < 1 || b.length > 63) throw new Error(`bad DNS label in "${name}"`);
      parts.push(Buffer.from([b.length]), b);
    }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new Error(`DNS name too long: "${name}"`);
  return out;
}

export interface Rr {
  name: string;
  type: number;
  klass: number;
  ttl: number;
  rdata: Buffer;
}

export function encodeRr(rr: Rr): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt16BE(rr.type, 0);
  head.writeUInt16BE(rr.klass, 2);
  head.writeUInt32BE(rr.ttl, 4);
  head.writeUInt16BE(rr.rdata.length, 8);
  return Buffer.concat([encodeName(rr.name), head, rr.rdata]);
}

export interface Header {
  id: number;
  flags: number;
  /** Counts of the four sections: zone/question, prerequisite/answer, update/authority, additional. */
  counts: [number, number, number, number];
}

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(h.id, 0);
  b.writeUInt16BE(h.flags, 2);
  h.counts.forEach((n, i) => b.writeUInt16BE(n, 4 + 2 * i));
  return b;
}

export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}

/** A parsed record: its name, fixed fields, and where its RDATA lies in the message. */
export interface ParsedRr extends Rr {
  /** Offset of the record's first byte (its owner name) in the message. */
  start: number;
  rdataOffset: number;
}

export interface ParsedMessage {
  header: Header;
  /** Every record after the question/zone section, in order (answer, authority, additional). */
  records: ParsedRr[];
}

/** A name has at most 127 labels and a sane server points once or twice per name: a longer chain of pointers is
 *  a loop or a hostile reply, never a name. */
const MAX_POINTER_HOPS = 32;

/** Reads a possibly compressed name at `offset`; returns it and the offset after it (in the original place). */
export function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let at = offset;
  let next = -1;
  for (let hops = 0; ;) {
    if (at >= msg.length) throw new Error('DNS name runs past the message');
    const len = msg[at]!;
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= msg.length) throw new Error('DNS name pointer runs past the message');
      if (++hops > MAX_POINTER_HOPS) throw new Error('DNS name pointers loop');
      if (next < 0) next = at + 2;
      at = ((len & 0x3f) << 8) | msg[at + 1]!;
      continue;
    }
    if (len & 0xc0) throw new Error('DNS label type unsupported');
    if (len === 0) break;
    if (at + 1 + len > msg.length) throw new Error('DNS label runs past the message');
    labels.push(msg.toString('latin1', at + 1, at + 1 + len).toLowerCase());
    at += 1 + len;
  }
  return { name: labels.join('.'), next: next < 0 ? at + 1 : next };
}

/** Walks a message: the header, the question/zone entries (skipped), then every record. Throws on anything
 *  that does not fit in the bytes given. */
export function parseMessage(msg: Buffer): ParsedMessage {
  if (msg.length < 12) throw new Error('DNS message shorter than its header');
  const counts = [0, 1, 2, 3].map((i) => msg.readUInt16BE(4 + 2 * i)) as Header['counts'];
  const header: Header = { id: msg.readUInt16BE(0), flags: msg.readUInt16BE(2), counts };
  let at = 12;
  for (let i = 0; i < counts[0]; i++) {
    at = readName(msg, at).next + 4;
    if (at > msg.length) throw new Error('DNS question runs past the message');
  }
  const records: ParsedRr[] = [];
  const total = counts[1] + counts[2] + counts[3];
  for (let i = 0; i < total; i++) {
    const start = at;
    const { name, next } = readName(msg, at);
    if (next + 10 > msg.length) throw new Error('DNS record runs past the message');
    const rdlen = msg.readUInt16BE(next + 8);
    const rdataOffset = next + 10;
    if (rdataOffset + rdlen > msg.length) throw new Error('DNS record data runs past the message');
    records.push({
      name,
      type: msg.readUInt16BE(next),
      klass: msg.readUInt16BE(next + 2),
      ttl: msg.readUInt32BE(next + 4),
      rdata: msg.subarray(rdataOffset, rdataOffset + rdlen),
      start,
      rdataOffset,
    });
    at = rdataOffset + rdlen;
  }
  return { header, records };
}
