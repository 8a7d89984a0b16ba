/** @module protocol/framing: the 8-byte UDP header, CRLF lines, Content-length bodies, status lines.
 *  Pure: imports nothing with I/O (docs/protocol.md §2). */

import { RemoteProtocolError } from '../errors.js';
import { MAX_CONTENT_LENGTH, SEQUENCE_MODULUS, UDP_HEADER_BYTES } from './constants.js';

export interface UdpHeader {
  /** 28-bit sequence (the nibble stripped). */
  seq: number;
  /** Opaque to the server; echoed. */
  timestamp: number;
}

/** Splits a control datagram. Throws TSP_BAD_FRAME for anything shorter than the header or without the 0xF
 *  nibble; the caller drops such datagrams silently (no reply to malformed datagrams, §11). */
export function decodeUdpHeader(datagram: Uint8Array): { header: UdpHeader; body: Buffer } {
  if (datagram.length < UDP_HEADER_BYTES)
    throw new RemoteProtocolError('TSP_BAD_FRAME', 'datagram shorter than the 8-byte TSP header');
  const b = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.length);
  const word = b.readUInt32BE(0);
  if (word >>> 28 !== 0xf) throw new RemoteProtocolError('TSP_BAD_FRAME', 'first nibble is not 0xF');
  return { header: { seq: word & 0x0fffffff, timestamp: b.readUInt32BE(4) }, body: b.subarray(UDP_HEADER_BYTES) };
}

export function encodeUdpHeader(h: UdpHeader): Buffer {
  const b = Buffer.allocUnsafe(UDP_HEADER_BYTES);
  b.writeUInt32BE((0xf0000000 | (h.seq & 0x0fffffff)) >>> 0, 0);
  b.writeUInt32BE(h.timestamp >>> 0, 4);
  return b;
}

/** -1, 0 or 1: how `a` relates to `b` modulo 2^28 (serial number arithmetic). */
export function compareSeq(a: number, b: number): -1 | 0 | 1 {
  if (a === b) return 0;
  const d = (a - b + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
  return d < SEQUENCE_MODULUS / 2 ? 1 : -1;
}

export const CRLF = '\r\n';

/** A bare status line: `200 Success\r\n` (version and authentication phases). */
export function statusLine(code: number, text: string): Buffer {
  return Buffer.from(`${code} ${text}${CRLF}`, 'latin1');
}

/** A Content-length framed reply. N counts the status line and the body after the header's CRLF
 *  (recording 01: `Content-length: 501` = 13 bytes of `200 Success\r\n` + 488 of XML). The header is spelled
 *  exactly `Content-length: `: gogoc compares case-sensitively (docs/protocol.md §2.6). */
export function framedReply(code: number, text: string, body = ''): Buffer {
  const payload = Buffer.from(`${code} ${text}${CRLF}${body}`, 'utf8');
  return Buffer.concat([Buffer.from(`Content-length: ${payload.length}${CRLF}`, 'latin1'), payload]);
}

/** A client's Content-length message (request side): N counts exactly the bytes after the header line. */
export function framedRequest(body: string): Buffer {
  const payload = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`Content-length: ${payload.length}${CRLF}`, 'latin1'), payload]);
}

const CONTENT_LENGTH = /^\s*content-length\s*:\s*(\d{1,12})\s*$/i;

/** Parses a `Content-length: N` header line (without its line end), case-insensitively with optional spaces.
 *  Returns undefined when the line is not such a header; throws TSP_TOO_LARGE over MAX_CONTENT_LENGTH. */
export function parseContentLengthLine(line: string): number | undefined {
  const m = CONTENT_LENGTH.exec(line);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (n > MAX_CONTENT_LENGTH)
    throw new RemoteProtocolError('TSP_TOO_LARGE', `Content-length ${n} exceeds the limit of ${MAX_CONTENT_LENGTH}`);
  return n;
}

/** Splits a whole Content-length message (a UDP datagram body): exactly N bytes must follow the header line.
 *  Trailing NULs are tolerated (some clients send C strings). */
export function splitFramed(body: Buffer): Buffer {
  const lf = body.indexOf(0x0a);
  if (lf < 0) throw new RemoteProtocolError('TSP_BAD_FRAME', 'no line end after the Content-length header');
  const n = parseContentLengthLine(body.subarray(0, lf).toString('latin1').replace(/\r$/, ''));
  if (n === undefined) throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected a Content-length header');
  const rest = stripTrailingNuls(body.subarray(lf + 1));
  if (rest.length < n)
    throw new RemoteProtocolError('TSP_BAD_FRAME', `Content-length ${n} but ${rest.length} bytes follow`);
  if (rest.length > n && rest.subarray(n).some((c) => c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09))
    throw new RemoteProtocolError('TSP_BAD_FRAME', `Content-length ${n} but ${rest.length} bytes follow`);
  return rest.subarray(0, n);
}

export function stripTrailingNuls(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

/** Removes one trailing CR LF (or LF) and trailing NULs from a line datagram's body. */
export function lineText(b: Buffer): Buffer {
  let body = stripTrailingNuls(b);
  if (body.length && body[body.length - 1] === 0x0a) body = body.subarray(0, body.length - 1);
  if (body.length && body[body.length - 1] === 0x0d) body = body.subarray(0, body.length - 1);
  return body;
}
