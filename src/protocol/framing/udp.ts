/** @module protocol/framing/udp: TSP over UDP (docs/protocol.md §2.2, §2.3): the 8-byte header, the one test for
 *  "is this a control datagram", the stateless answer to a first VERSION, and the server's reader and writer:
 *  every datagram gets exactly one reply echoing its header; a repeated sequence gets the cached reply and is
 *  not re-executed; an older sequence is dropped; replies stay within the anti-amplification budget. Pure. */

import { RemoteProtocolError } from '../../errors.js';
import {
  AMPLIFICATION_FACTOR,
  CONTROL_NIBBLE,
  MAX_CONTROL_DATAGRAM,
  MAX_REPLY_RESENDS,
  SEQUENCE_MODULUS,
  UDP_HEADER_BYTES,
  UDP_IPV4_OVERHEAD,
  type TspVersion,
} from '../constants.js';
import { answerVersion, startsWithVersion, type Capabilities } from '../server/version.js';
import { splitWhole } from './content-length.js';
import { isBlank, lineText } from './lines.js';
import type { Inbound, Outbox, ReaderState, ServerFraming } from './types.js';

export interface UdpHeader {
  /** 28-bit sequence (the nibble stripped). */
  seq: number;
  /** Opaque to the server; echoed. */
  timestamp: number;
}

/** Whether a datagram on the TSP port is control: a whole header whose first nibble is 0xF (§2.4). Anything
 *  else there is tunnelled data or noise, never answered. */
export function isControlDatagram(d: Uint8Array): boolean {
  return d.length >= UDP_HEADER_BYTES && d[0]! >> 4 === CONTROL_NIBBLE;
}

/** Splits a control datagram. Throws TSP_BAD_FRAME for anything that is not one (isControlDatagram); the caller
 *  drops such datagrams silently (no reply to malformed datagrams, §11). */
export function decodeUdpHeader(datagram: Uint8Array): { header: UdpHeader; body: Buffer } {
  if (datagram.length < UDP_HEADER_BYTES)
    throw new RemoteProtocolError('TSP_BAD_FRAME', 'datagram shorter than the 8-byte TSP header');
  if (!isControlDatagram(datagram)) throw new RemoteProtocolError('TSP_BAD_FRAME', 'first nibble is not 0xF');
  const b = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.length);
  return {
    header: { seq: b.readUInt32BE(0) & 0x0fffffff, timestamp: b.readUInt32BE(4) },
    body: b.subarray(UDP_HEADER_BYTES),
  };
}

export function encodeUdpHeader(h: UdpHeader): Buffer {
  const b = Buffer.allocUnsafe(UDP_HEADER_BYTES);
  b.writeUInt32BE(((CONTROL_NIBBLE << 28) | (h.seq & 0x0fffffff)) >>> 0, 0);
  b.writeUInt32BE(h.timestamp >>> 0, 4);
  return b;
}

/** -1, 0 or 1: how `a` relates to `b` modulo 2^28 (serial number arithmetic). */
export function compareSeq(a: number, b: number): -1 | 0 | 1 {
  if (a === b) return 0;
  const d = (a - b + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
  return d < SEQUENCE_MODULUS / 2 ? 1 : -1;
}

export type FirstDatagram =
  /** A VERSION: answer it with `reply` and keep nothing (`version` is undefined when refused with 302). */
  | { kind: 'version'; reply: Buffer; version: TspVersion | undefined }
  /** The message that follows VERSION: a session starts here. */
  | { kind: 'authenticate' }
  /** Anything else from an ip:port without a session: no reply (docs/protocol.md §11). */
  | { kind: 'drop' };

/** Classifies a UDP datagram from an ip:port that has no session, without creating one. VERSION is answered
 *  from the configuration alone (CAPABILITY, or 302 for a version we do not speak), so a flood of spoofed
 *  VERSION datagrams costs no memory; a session starts only with the client's next message, AUTHENTICATE.
 *  The reply is at most a CAPABILITY line: about 2 times the request's bytes on the wire. */
export function classifyFirstDatagram(datagram: Uint8Array, caps: Capabilities): FirstDatagram {
  if (datagram.length > MAX_CONTROL_DATAGRAM || !isControlDatagram(datagram)) return { kind: 'drop' };
  const { header, body } = decodeUdpHeader(datagram);
  const text = lineText(body).toString('latin1');
  if (/^AUTHENTICATE\s/i.test(text)) return { kind: 'authenticate' };
  const answer = answerVersion(text, caps);
  if (!answer) return { kind: 'drop' };
  return {
    kind: 'version',
    reply: Buffer.concat([encodeUdpHeader(header), answer.reply]),
    version: answer.supported ? answer.version : undefined,
  };
}

/** The datagram being read: kept between push() and next(). */
interface Arrived {
  header: UdpHeader;
  body: Buffer;
  isVersion: boolean;
  /** The session restarted for it: it is read as a new VERSION whatever its sequence. */
  restarted: boolean;
}

export class UdpServerFraming implements ServerFraming {
  readonly transport = 'udp' as const;
  readonly digestSuccess = 'poll' as const;
  readonly acceptLingerMs = undefined;
  readonly endsAtOnce = false;
  private validated = false;
  private arrived: Arrived | undefined;
  private lastSeq: number | undefined;
  private replyHeader: UdpHeader | undefined;
  private cachedReply: Buffer | undefined;
  private resends = 0;
  /** Bytes on the wire from and to the peer (anti-amplification, RFC 9000 §8.1 applied to TSP). */
  private wireIn = 0;
  private wireOut = 0;

  get sourceValidated(): boolean {
    return this.validated;
  }
  markValidated(): void {
    this.validated = true;
  }
  expectNul(): void {} // a datagram's trailing NULs are stripped with its line end

  push(datagram: Buffer, state: ReaderState, out: Outbox): void {
    this.wireIn += datagram.length + UDP_IPV4_OVERHEAD;
    this.arrived = undefined;
    if (datagram.length > MAX_CONTROL_DATAGRAM) return; // cannot be a valid request; never answered
    if (!isControlDatagram(datagram)) return; // no reply to malformed datagrams (§11); the adapter counts them
    const { header, body } = decodeUdpHeader(datagram);
    if (this.lastSeq !== undefined && header.seq === this.lastSeq) {
      // retransmission: the cached reply, never re-executed; nothing if the answer is still being decided. A
      // bounded number of times, and within the amplification budget: header-only repeats from a spoofed
      // source must not draw the offer again and again.
      if (this.cachedReply && !state.waiting) {
        if (this.resends >= MAX_REPLY_RESENDS) out.withheld('resends');
        else {
          this.resends++;
          this.sendDatagram(this.cachedReply, out);
        }
      }
      return;
    }
    this.arrived = { header, body, isVersion: startsWithVersion(body), restarted: false };
  }

  next(state: ReaderState): Inbound | undefined {
    const a = this.arrived;
    if (!a) return undefined;
    if (a.isVersion && !state.atStart) {
      a.restarted = true;
      return { kind: 'restart' };
    }
    this.arrived = undefined;
    if (!a.restarted && this.lastSeq !== undefined && compareSeq(a.header.seq, this.lastSeq) < 0) return undefined;
    if (state.reading === 'nothing') return undefined; // a new request to a failed session: it must start with VERSION=
    if (state.atStart && !a.isVersion) return undefined; // not TSP, or a session we never saw: no reply (§11)
    if (state.waiting) return undefined; // the client waits for the pending reply; it cannot send anew
    this.lastSeq = a.header.seq;
    this.replyHeader = a.header;
    this.cachedReply = undefined;
    if (state.reading === 'line') return { kind: 'line', line: lineText(a.body) };
    if (isBlank(a.body)) return { kind: 'poll' };
    return { kind: 'framed', body: wholeRequest(a.body) };
  }

  /** One reply to the current request, with its header, cached for retransmissions. */
  reply(body: Buffer, out: Outbox): void {
    const h = this.replyHeader;
    if (!h) return; // cannot happen: every UDP reply answers a datagram
    const datagram = Buffer.concat([encodeUdpHeader(h), body]);
    this.cachedReply = datagram;
    this.resends = 0;
    this.sendDatagram(datagram, out);
  }

  /** Sends within the anti-amplification budget; a withheld reply is retransmitted for by the client, whose
   *  retransmission adds to the budget. */
  private sendDatagram(datagram: Buffer, out: Outbox): void {
    const wire = datagram.length + UDP_IPV4_OVERHEAD;
    if (!this.validated && this.wireOut + wire > AMPLIFICATION_FACTOR * this.wireIn) {
      out.withheld('amplification');
      return;
    }
    this.wireOut += wire;
    out.send(datagram);
  }
}

/** A Content-length request that fills its datagram (trailing NULs tolerated: some clients send C strings). */
function wholeRequest(body: Buffer): Buffer {
  const w = splitWhole(body, 'end');
  switch (w.kind) {
    case 'message':
      return w.payload;
    case 'noLineEnd':
      throw new RemoteProtocolError('TSP_BAD_FRAME', 'no line end after the Content-length header');
    case 'notFramed':
      throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected a Content-length header');
    case 'mismatch':
      throw new RemoteProtocolError('TSP_BAD_FRAME', `Content-length ${w.length} but ${w.following} bytes follow`);
  }
}
