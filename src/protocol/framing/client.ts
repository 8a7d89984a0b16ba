/** @module protocol/framing/client: the client session's two transports (docs/protocol.md §2.2, §2.3, §2.5).
 *
 *  UDP (gogoc's values): the sequence starts at 0xF00000F0 on every socket and grows by one per new request,
 *  empty polls included; a retransmission keeps it and carries a new timestamp, in milliseconds since the start
 *  of the second the session started; a reply is matched on the sequence alone. Before the first reply: 3
 *  transmissions 2 s apart, then CLIENT_UNREACHABLE. Afterwards an adaptive RTO (srtt + 4·rttvar, clamped to
 *  2–30 s, doubling from the third timeout), up to 8 transmissions, then CLIENT_TIMEOUT.
 *  TCP: a byte stream, buffered (rspauth and 200 may share a segment), with a read timeout per reply. Pure. */

import { BrokerError } from '../../errors.js';
import { SEQUENCE_MODULUS } from '../constants.js';
import { stripTrailingNuls } from './lines.js';
import { takeReply } from './tcp.js';
import { decodeUdpHeader, encodeUdpHeader, isControlDatagram } from './udp.js';

/** gogoc starts every socket's sequence here (the 28 bits after the 0xF nibble of 0xF00000F0). */
export const GOGOC_FIRST_SEQUENCE = 0xf0;
/** Retransmission timer before the first reply on a socket, and how many transmissions then. */
export const FIRST_RTO_MS = 2_000;
export const FIRST_REPLY_TRANSMISSIONS = 3;
/** Adaptive RTO bounds and transmissions once the server has answered. */
export const MIN_RTO_MS = 2_000;
export const MAX_RTO_MS = 30_000;
export const MAX_TRANSMISSIONS = 8;
/** Our TCP read timeout per expected reply (gogoc has none and hangs, §3.4). */
export const DEFAULT_TCP_READ_TIMEOUT_MS = 15_000;

/** The client session's view of its transport. */
export interface ClientFraming {
  readonly transport: 'udp' | 'tcp';
  /** TCP: PLAIN credentials follow AUTHENTICATE at once; the server acknowledges nothing between (§5.3). */
  readonly plainAtOnce: boolean;
  /** UDP: the `200` after rspauth answers an empty poll; TCP: it follows unasked (§5.4). */
  readonly pollAfterRspauth: boolean;
  /** UDP: the accept is acknowledged (header only); TCP: the server answers nothing (§6.7). */
  readonly acceptAcked: boolean;
  /** The server has answered at least once. */
  readonly gotReply: boolean;
  readonly smoothedRttMs: number | undefined;
  /** Sends a request that expects one reply, and arms its timer. */
  request(body: Buffer, nowMs: number, out: Buffer[]): void;
  /** TCP: writes bytes that expect no reply of their own. */
  send(body: Buffer, out: Buffer[]): void;
  /** TCP: another reply is expected without a request (the 200 after rspauth). */
  expectReply(nowMs: number): void;
  /** Bytes from the server: one datagram, or a chunk of the stream. */
  push(bytes: Buffer, nowMs: number): void;
  /** The next whole reply, or undefined. */
  next(): Buffer | undefined;
  /** At or after wakeAtMs(): retransmits, or returns the error that ends the session (`while` names the state). */
  timeout(nowMs: number, out: Buffer[], while_: string): BrokerError | undefined;
  wakeAtMs(): number | undefined;
  /** Nothing more is expected: the timers stop. */
  stop(): void;
}

interface Outstanding {
  seq: number;
  body: Buffer;
  transmissions: number;
  sentAtMs: number;
  timeouts: number;
}

export class UdpClientFraming implements ClientFraming {
  readonly transport = 'udp' as const;
  readonly plainAtOnce = false;
  readonly pollAfterRspauth = true;
  readonly acceptAcked = true;
  gotReply = false;
  private nextSeq: number;
  private readonly timestampBaseMs: number;
  private outstanding: Outstanding | undefined;
  private ready: Buffer | undefined;
  private srttMs: number | undefined;
  private rttvarMs = 0;

  constructor(firstSequence: number, nowMs: number) {
    this.nextSeq = firstSequence % SEQUENCE_MODULUS;
    // gogoc: milliseconds since the start of the second in which its reliable-UDP engine started (§2.2)
    this.timestampBaseMs = Math.floor(nowMs / 1000) * 1000;
  }

  get smoothedRttMs(): number | undefined {
    return this.srttMs;
  }

  request(body: Buffer, nowMs: number, out: Buffer[]): void {
    const o: Outstanding = { seq: this.nextSeq, body, transmissions: 0, sentAtMs: nowMs, timeouts: 0 };
    this.nextSeq = (this.nextSeq + 1) % SEQUENCE_MODULUS;
    this.outstanding = o;
    this.transmit(o, nowMs, out);
  }

  send(): void {
    throw new BrokerError('INTERNAL', 'over UDP every message is a request');
  }

  expectReply(): void {}

  push(d: Buffer, nowMs: number): void {
    if (!isControlDatagram(d)) return; // not control: ignore (§13.2)
    const { header, body } = decodeUdpHeader(d);
    const o = this.outstanding;
    if (!o || header.seq !== o.seq) return; // a late duplicate or a stranger: gogoc matches on seq only
    if (o.transmissions === 1) this.sampleRtt(nowMs - o.sentAtMs); // Karn: only unambiguous samples
    this.outstanding = undefined;
    this.gotReply = true;
    this.ready = stripTrailingNuls(body);
  }

  next(): Buffer | undefined {
    const r = this.ready;
    this.ready = undefined;
    return r;
  }

  timeout(nowMs: number, out: Buffer[], while_: string): BrokerError | undefined {
    const o = this.outstanding;
    if (!o || nowMs < o.sentAtMs + this.rtoMs(o)) return undefined;
    o.timeouts++;
    const limit = this.gotReply ? MAX_TRANSMISSIONS : FIRST_REPLY_TRANSMISSIONS;
    if (o.transmissions < limit) {
      this.transmit(o, nowMs, out);
      return undefined;
    }
    return this.gotReply
      ? new BrokerError('CLIENT_TIMEOUT', `no reply to ${while_} after ${o.transmissions} transmissions`)
      : new BrokerError('CLIENT_UNREACHABLE', `no reply after ${o.transmissions} transmissions`);
  }

  wakeAtMs(): number | undefined {
    const o = this.outstanding;
    return o ? o.sentAtMs + this.rtoMs(o) : undefined;
  }

  stop(): void {
    this.outstanding = undefined;
  }

  private transmit(o: Outstanding, nowMs: number, out: Buffer[]): void {
    o.transmissions++;
    o.sentAtMs = nowMs;
    // every transmission carries a new timestamp; the sequence stays (§2.2)
    const header = encodeUdpHeader({ seq: o.seq, timestamp: (nowMs - this.timestampBaseMs) >>> 0 });
    out.push(Buffer.concat([header, o.body]));
  }

  private rtoMs(o: Outstanding): number {
    if (!this.gotReply || this.srttMs === undefined) return FIRST_RTO_MS;
    const base = Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, this.srttMs + 4 * this.rttvarMs));
    // doubling from the third timeout on (gogoc's net_rudp)
    return Math.min(MAX_RTO_MS, base * 2 ** Math.max(0, o.timeouts - 2));
  }

  /** RFC 6298 smoothing. */
  private sampleRtt(ms: number): void {
    if (this.srttMs === undefined) {
      this.srttMs = ms;
      this.rttvarMs = ms / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - ms);
      this.srttMs = 0.875 * this.srttMs + 0.125 * ms;
    }
  }
}

export class TcpClientFraming implements ClientFraming {
  readonly transport = 'tcp' as const;
  readonly plainAtOnce = true;
  readonly pollAfterRspauth = false;
  readonly acceptAcked = false;
  readonly smoothedRttMs = undefined;
  gotReply = false;
  private inbuf: Buffer = Buffer.alloc(0);
  private readDeadlineMs: number | undefined;

  constructor(private readonly readTimeoutMs: number) {}

  request(body: Buffer, nowMs: number, out: Buffer[]): void {
    out.push(body);
    this.expectReply(nowMs);
  }

  send(body: Buffer, out: Buffer[]): void {
    out.push(body);
  }

  expectReply(nowMs: number): void {
    this.readDeadlineMs = nowMs + this.readTimeoutMs;
  }

  push(chunk: Buffer): void {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, chunk]) : Buffer.from(chunk);
  }

  next(): Buffer | undefined {
    const r = takeReply(this.inbuf);
    if (!r) return undefined;
    this.inbuf = r.rest;
    this.readDeadlineMs = undefined;
    this.gotReply = true;
    return r.reply;
  }

  timeout(nowMs: number, _out: Buffer[], while_: string): BrokerError | undefined {
    if (this.readDeadlineMs === undefined || nowMs < this.readDeadlineMs) return undefined;
    return new BrokerError('CLIENT_TIMEOUT', `no reply within ${this.readTimeoutMs} ms while ${while_}`);
  }

  wakeAtMs(): number | undefined {
    return this.readDeadlineMs;
  }

  stop(): void {
    this.readDeadlineMs = undefined;
  }
}
