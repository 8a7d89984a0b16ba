/** @module dns/tsig: transaction signatures (RFC 8945) for our dynamic updates: sign a request, check the reply's
 *  signature against the request's MAC. HMAC-SHA256/384/512 only (HMAC-MD5 and SHA-1 are deprecated there).
 *  Pure but for the clock passed in. */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLASS, encodeName, readName, rcodeName, TYPE, type ParsedMessage } from './wire.js';

export const TSIG_ALGORITHMS = ['hmac-sha256', 'hmac-sha384', 'hmac-sha512'] as const;
export type TsigAlgorithm = (typeof TSIG_ALGORITHMS)[number];

export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

/** Text a server chose (a key or algorithm name), safe for a log line, a stored error and a web page. */
const shown = (s: string) => s.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);

/** Seconds of clock difference the server may allow (RFC 8945 §10 recommends 300). */
export const FUDGE_S = 300;

interface Variables {
  timeS: number;
  fudge: number;
  error: number;
  other: Buffer;
}

function variables(key: TsigKey, v: Variables, full: boolean): Buffer {
  const time = Buffer.alloc(8);
  time.writeUIntBE(v.timeS, 0, 6);
  time.writeUInt16BE(v.fudge, 6);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(v.error, 0);
  tail.writeUInt16BE(v.other.length, 2);
  const head = Buffer.alloc(6);
  head.writeUInt16BE(CLASS.ANY, 0);
  head.writeUInt32BE(0, 2);
  return full
    ? Buffer.concat([encodeName(key.name), head, encodeName(key.algorithm), time, tail, v.other])
    : Buffer.concat([time, tail, v.other]);
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac(key.algorithm.slice(5), key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

function withArcount(message: Buffer, delta: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(copy.readUInt16BE(10) + delta, 10);
  return copy;
}

/** The request with a TSIG record appended (ARCOUNT + 1), and the MAC the reply's signature covers. */
export function signRequest(message: Buffer, key: TsigKey, nowS: number): { signed: Buffer; mac: Buffer } {
  const v: Variables = { timeS: nowS, fudge: FUDGE_S, error: 0, other: Buffer.alloc(0) };
  const mac = hmac(key, [message, variables(key, v, true)]);
  // RDATA: algorithm, time signed (48 bits), fudge, MAC size, MAC, original id, error, other length (no other)
  const timeFudge = variables(key, v, false).subarray(0, 8);
  const macLen = Buffer.alloc(2);
  macLen.writeUInt16BE(mac.length);
  const idErrorOther = Buffer.alloc(6);
  idErrorOther.writeUInt16BE(message.readUInt16BE(0), 0);
  const fullRdata = Buffer.concat([encodeName(key.algorithm), timeFudge, macLen, mac, idErrorOther]);
  const rrHead = Buffer.alloc(10);
  rrHead.writeUInt16BE(TYPE.TSIG, 0);
  rrHead.writeUInt16BE(CLASS.ANY, 2);
  rrHead.writeUInt32BE(0, 4);
  rrHead.writeUInt16BE(fullRdata.length, 8);
  const signed = Buffer.concat([withArcount(message, 1), encodeName(key.name), rrHead, fullRdata]);
  return { signed, mac };
}

/** Checks a reply's TSIG against the request's MAC. Returns null when it verifies, else why not (a TSIG error
 *  the server reported, a missing or forged signature, a clock out of the fudge). */
export function verifyReply(reply: Buffer, parsed: ParsedMessage, key: TsigKey, requestMac: Buffer, nowS: number) {
  const last = parsed.records[parsed.records.length - 1];
  if (!last || last.type !== TYPE.TSIG || parsed.header.counts[3] === 0) return 'reply is not signed';
  if (last.name !== key.name.toLowerCase().replace(/\.$/, ''))
    return `reply signed with another key (${shown(last.name)})`;
  // the record's RDATA alone: a field that runs past it is a malformed record, never a read elsewhere
  const rd = last.rdata;
  let alg;
  try {
    alg = readName(rd, 0);
  } catch {
    return 'reply TSIG record is malformed';
  }
  if (alg.name !== key.algorithm) return `reply signed with another algorithm (${shown(alg.name)})`;
  let p = alg.next;
  if (p + 10 > rd.length) return 'reply TSIG record is malformed';
  const timeS = rd.readUIntBE(p, 6);
  const fudge = rd.readUInt16BE(p + 6);
  const macLen = rd.readUInt16BE(p + 8);
  p += 10;
  if (p + macLen + 6 > rd.length) return 'reply TSIG record is malformed';
  const mac = rd.subarray(p, p + macLen);
  p += macLen + 2; // original id
  const error = rd.readUInt16BE(p);
  const otherLen = rd.readUInt16BE(p + 2);
  if (p + 4 + otherLen > rd.length) return 'reply TSIG record is malformed';
  const other = rd.subarray(p + 4, p + 4 + otherLen);
  if (error !== 0) return `server reported TSIG error ${rcodeName(error)}`;
  const unsigned = withArcount(reply.subarray(0, last.start), -1);
  const reqMacLen = Buffer.alloc(2);
  reqMacLen.writeUInt16BE(requestMac.length);
  const expected = hmac(key, [reqMacLen, requestMac, unsigned, variables(key, { timeS, fudge, error, other }, true)]);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return 'reply signature does not verify';
  if (Math.abs(nowS - timeS) > fudge) return 'reply signed outside the allowed clock difference';
  return null;
}
