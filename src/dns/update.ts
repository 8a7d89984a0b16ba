/** @module dns/update: an RFC 2136 dynamic update client, TSIG-signed, over TCP (no truncation, one exchange per
 *  connection). The one update we send replaces the NS record sets at some names of one zone: for each name,
 *  delete every NS record there, then add the new ones (none: the delegation goes). Glue is never sent. */

import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import { signRequest, verifyReply, type TsigKey } from './tsig.js';
import {
  CLASS,
  encodeHeader,
  encodeName,
  encodeRr,
  OPCODE_UPDATE,
  opcodeOf,
  parseMessage,
  rcodeName,
  TYPE,
} from './wire.js';

export interface UpdateServer {
  /** IPv4 or IPv6 address of the authoritative server that takes updates for `zone`. */
  address: string;
  port: number;
  /** The zone the update is for (the server's zone holding the delegation points). */
  zone: string;
  key: TsigKey;
  timeoutMs: number;
}

/** At `name`, NS records pointing to `servers`; an empty list removes the delegation. */
export interface NsChange {
  name: string;
  servers: readonly string[];
  ttl: number;
}

/** An update the server refused or that could not be sent: `reason` is for the operator's log. */
export class DnsUpdateError extends Error {
  constructor(readonly reason: string) {
    super(`DNS update failed: ${reason}`);
    this.name = 'DnsUpdateError';
  }
}

/** The unsigned UPDATE message: zone section (zone SOA IN), no prerequisites, the NS deletes and adds. */
export function buildUpdate(id: number, zone: string, changes: readonly NsChange[]): Buffer {
  const rrs: Buffer[] = [];
  for (const c of changes) {
    rrs.push(encodeRr({ name: c.name, type: TYPE.NS, klass: CLASS.ANY, ttl: 0, rdata: Buffer.alloc(0) }));
    for (const s of c.servers)
      rrs.push(encodeRr({ name: c.name, type: TYPE.NS, klass: CLASS.IN, ttl: c.ttl, rdata: encodeName(s) }));
  }
  const zoneEntry = Buffer.concat([encodeName(zone), Buffer.from([0, TYPE.SOA, 0, CLASS.IN])]);
  const header = encodeHeader({ id, flags: OPCODE_UPDATE << 11, counts: [1, 0, rrs.length, 0] });
  return Buffer.concat([header, zoneEntry, ...rrs]);
}

/** Sends one signed update and checks the signed reply. Resolves when the server answered NOERROR with a valid
 *  signature; rejects with DnsUpdateError otherwise. */
export async function sendUpdate(server: UpdateServer, changes: readonly NsChange[], nowS: number): Promise<void> {
  const id = randomInt(0, 0x10000);
  const { signed, mac } = signRequest(buildUpdate(id, server.zone, changes), server.key, nowS);
  if (signed.length > 0xffff) throw new DnsUpdateError('update too large for one message');
  const reply = await exchange(server, signed);
  let parsed;
  try {
    parsed = parseMessage(reply);
  } catch (err) {
    throw new DnsUpdateError(`malformed reply (${(err as Error).message})`);
  }
  const { header } = parsed;
  if (header.id !== id || !(header.flags & 0x8000) || opcodeOf(header.flags) !== OPCODE_UPDATE)
    throw new DnsUpdateError('reply does not answer our update');
  const rcode = header.flags & 0xf;
  const tsigProblem = verifyReply(reply, parsed, server.key, mac, nowS);
  if (rcode !== 0)
    throw new DnsUpdateError(`server answered ${rcodeName(rcode)}${tsigProblem ? ` (${tsigProblem})` : ''}`);
  if (tsigProblem) throw new DnsUpdateError(tsigProblem);
}

/** One length-prefixed request and reply over a fresh TCP connection, bounded by the timeout. */
function exchange(server: UpdateServer, message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.address, port: server.port });
    const chunks: Buffer[] = [];
    let have = 0;
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new DnsUpdateError(reason));
    };
    const timer = setTimeout(
      () => fail(`no answer from ${server.address} port ${server.port} within ${server.timeoutMs} ms`),
      server.timeoutMs,
    );
    socket.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(message.length);
      socket.end(Buffer.concat([len, message]));
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      const all = Buffer.concat(chunks);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(all.subarray(2, 2 + all.readUInt16BE(0)));
      } else if (have > 0x10001) fail('reply too long');
    });
    socket.on('error', (err) => fail(`${server.address} port ${server.port}: ${err.message}`));
    socket.on('close', () => fail('connection closed before a full reply'));
  });
}
