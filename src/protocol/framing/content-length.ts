/** @module protocol/framing/content-length: the one `Content-length: N` parser and writer, for both sides and
 *  both transports (docs/protocol.md §2.6). A request's N counts the bytes after the header line; a reply's N
 *  counts its status line and body (recording 01: `Content-length: 501` = 13 bytes of `200 Success\r\n` + 488
 *  of XML). Pure. */

import { RemoteProtocolError } from '../../errors.js';
import { MAX_CONTENT_LENGTH } from '../constants.js';
import { CRLF } from '../status.js';
import { headerText, stripTrailingNuls } from './lines.js';

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

/** One Content-length message looked for at the start of a buffer (a stream's, or a whole datagram body). */
export type FramedScan =
  /** The payload is `buf[start, end)`; `end` is also where the next message begins. */
  | { kind: 'message'; length: number; start: number; end: number }
  /** No line end yet (`lineLength` bytes so far), or the header is there and its payload not all of it. */
  | { kind: 'incomplete'; lineLength: number | undefined }
  /** The first line is not a Content-length header; `lf` is its line end. */
  | { kind: 'notFramed'; lf: number };

export function scanFramed(buf: Buffer): FramedScan {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return { kind: 'incomplete', lineLength: buf.length };
  const n = parseContentLengthLine(headerText(buf, lf));
  if (n === undefined) return { kind: 'notFramed', lf };
  if (buf.length < lf + 1 + n) return { kind: 'incomplete', lineLength: undefined };
  return { kind: 'message', length: n, start: lf + 1, end: lf + 1 + n };
}

/** A whole message that must fill its buffer (a UDP datagram body, or a reply already cut from the stream). */
export type WholeFramed =
  | { kind: 'message'; payload: Buffer }
  | { kind: 'noLineEnd' }
  | { kind: 'notFramed' }
  /** N bytes do not follow: fewer, or more that are not whitespace. */
  | { kind: 'mismatch'; length: number; following: number };

/** Splits a whole Content-length message: exactly N bytes must follow the header line; trailing whitespace is
 *  tolerated, and NULs as well: at the very end only (`nuls: 'end'`, the server's reading of a datagram) or
 *  anywhere in the trail (`nuls: 'trail'`, the client's reading of a reply). */
export function splitWhole(buf: Buffer, nuls: 'end' | 'trail'): WholeFramed {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return { kind: 'noLineEnd' };
  const n = parseContentLengthLine(headerText(buf, lf));
  if (n === undefined) return { kind: 'notFramed' };
  const rest = nuls === 'end' ? stripTrailingNuls(buf.subarray(lf + 1)) : buf.subarray(lf + 1);
  const trailOk = (c: number) => c === 0x0d || c === 0x0a || c === 0x20 || c === 0x09 || (nuls === 'trail' && c === 0);
  if (rest.length < n || !rest.subarray(n).every(trailOk))
    return { kind: 'mismatch', length: n, following: rest.length };
  return { kind: 'message', payload: rest.subarray(0, n) };
}

/** A Content-length framed reply (server side). The header is spelled exactly `Content-length: `: gogoc
 *  compares case-sensitively (docs/protocol.md §2.6). */
export function framedReply(code: number, text: string, body = ''): Buffer {
  return framed(Buffer.from(`${code} ${text}${CRLF}${body}`, 'utf8'));
}

/** A client's Content-length message (request side): N counts exactly the bytes after the header line. */
export function framedRequest(body: string): Buffer {
  return framed(Buffer.from(body, 'utf8'));
}

function framed(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`Content-length: ${payload.length}${CRLF}`, 'latin1'), payload]);
}
