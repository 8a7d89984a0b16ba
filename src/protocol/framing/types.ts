/** @module protocol/framing/types: what a session and its framing say to each other. A session is built with
 *  the framing of its transport (framing/udp.ts, framing/tcp.ts) and never branches on the transport itself:
 *  where the transports differ in behaviour, the framing says how as data (h11 picks its reader by state the
 *  same way, h11/_readers.py). Pure. */

/** What the server session tells its framing when it asks for the next message. */
export interface ReaderState {
  /** The form the next message takes in the current state: a bare line, a Content-length message, or nothing
   *  at all (the session is closed). */
  readonly reading: 'line' | 'framed' | 'nothing';
  /** The session is at `start` (it has not read VERSION). */
  readonly atStart: boolean;
  /** A question is out, or a pause runs: the next message must wait (TCP) or is not read (UDP). */
  readonly waiting: boolean;
  /** Blank lines are skipped where a SASL payload is expected (other clients add a CR LF, docs/protocol.md §12). */
  readonly skipBlankLines: boolean;
}

/** One message for the server session. */
export type Inbound =
  | { kind: 'line'; line: Buffer }
  | { kind: 'framed'; body: Buffer }
  /** UDP: a header-only (or blank) datagram where a Content-length message belongs: acknowledged, no change. */
  | { kind: 'poll' }
  /** UDP: a datagram starting with VERSION= in a session past `start`: restart, then ask for the next message
   *  again (it is the same datagram, read as the new session's VERSION). */
  | { kind: 'restart' };

/** Where a framing puts what it sends, and says what it did not send. */
export interface Outbox {
  send(bytes: Buffer): void;
  /** A UDP reply was not sent: over the anti-amplification budget, or its request repeated too often. */
  withheld(reason: 'amplification' | 'resends'): void;
}

/** The server session's view of its transport. */
export interface ServerFraming {
  readonly transport: 'udp' | 'tcp';
  /** The peer has shown it receives what we send: TCP (the handshake), or a DIGEST response with our nonce. */
  readonly sourceValidated: boolean;
  markValidated(): void;
  /** How `200 Success` follows the DIGEST-MD5 rspauth: UDP answers the client's empty poll; TCP writes it on its
   *  own after a pause (gogoc reads them with separate recv() calls, docs/protocol.md §5.4). */
  readonly digestSuccess: 'poll' | 'pause';
  /** How long the session stays after the accept, or undefined for the negotiation timeout (UDP: the accept's
   *  reply cache must serve retransmissions). */
  readonly acceptLingerMs: number | undefined;
  /** After an error reply the session ends at once (TCP: write, then close) instead of lingering until its
   *  deadline so a retransmission gets the cached reply (UDP). */
  readonly endsAtOnce: boolean;
  /** Bytes that arrived: one datagram, or a chunk of the stream. UDP answers a retransmission from its cache
   *  here, before the session sees anything. */
  push(bytes: Buffer, state: ReaderState, out: Outbox): void;
  /** The next whole message the session can take in `state`, or undefined ("need data", or nothing to read). */
  next(state: ReaderState): Inbound | undefined;
  /** The message just read was an AUTHENTICATE line: one NUL may follow (gogoc's C string terminator, §2.7). */
  expectNul(): void;
  /** One reply to the current request. An empty body is a header-only ack over UDP and nothing over TCP. */
  reply(body: Buffer, out: Outbox): void;
}
