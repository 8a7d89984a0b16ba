/** @module protocol/client-session: one TSP client session (our tspc's side of docs/protocol.md §3.3), sans-I/O
 *  (docs/style.md §1), the mirror of server-session.ts. It is started, fed the bytes that arrive and the time, and
 *  returns a Step: bytes to send (each element one UDP datagram, header included, or one TCP write), events,
 *  the next deadline, and whether the session is over. The caller owns the socket: a `302` means "open a new
 *  one and start a new session with `nextLowerVersion`", which is what gogoc does (§4).
 *
 *    start --VERSION--> sentVersion --302--> refused           (event versionRefused: caller retries lower)
 *                            | CAPABILITY: mode advertised? mechanism in common?
 *            +---------------+----------------------+-------------------------------+
 *            | ANONYMOUS     | PLAIN                | DIGEST-MD5                    |
 *            v               v                      v                               |
 *     authAnonymous     authPlain --ack (UDP)--> plainCred      authDigest --challenge--> md5Response
 *            |               (TCP: both at once) ---^  |                                    | rspauth checked
 *            |                                         |                                    v
 *            +--200--> requested <--------200----------+<-----200 (UDP: after an empty poll)-- md5Poll
 *                          | offer (200 + XML, checked against the request)
 *                          v
 *                      accepted --UDP: header-only ack | TCP: at once--> established
 *    Any state: 300 -> failed(CLIENT_AUTH_FAILED); another status -> failed(...); no reply -> failed.
 *
 *  UDP (§2.2, §2.3, gogoc's values): the sequence starts at 0xF00000F0 on every socket and grows by one per new
 *  request, empty polls included; a retransmission keeps it and carries a new timestamp, in milliseconds since
 *  the start of the second the session started; a reply is matched on the sequence alone. Before the first
 *  reply: 3 transmissions 2 s apart, then CLIENT_UNREACHABLE. Afterwards an adaptive RTO (srtt + 4·rttvar,
 *  clamped to 2–30 s, doubling from the third timeout), up to 8 transmissions, then CLIENT_TIMEOUT.
 *  TCP (§2.5): a byte stream, buffered (rspauth and 200 may share a segment), with a read timeout per reply. */

import { BrokerError, type ErrorCode } from '../errors.js';
import { MAX_CONTENT_LENGTH, SEQUENCE_MODULUS, UDP_HEADER_BYTES, type TspVersion } from './constants.js';
import {
  decodeUdpHeader,
  encodeUdpHeader,
  framedRequest,
  parseContentLengthLine,
  stripTrailingNuls,
} from './framing.js';
import { buildClientResponse, checkRspauth, parseChallenge } from './sasl/digest-md5.js';
import { encodePlain } from './sasl/plain.js';
import { parseOffer, parseXml, writeActionRequest, writeCreateRequest, type Offer } from './xml.js';

// ---- states and transitions, as data (docs/style.md §2) ----

export type ClientState =
  | 'start'
  | 'sentVersion'
  | 'authAnonymous'
  | 'authPlain'
  | 'plainCred'
  | 'authDigest'
  | 'md5Response'
  | 'md5Poll'
  | 'requested'
  | 'accepted'
  | 'established'
  | 'refused'
  | 'failed';

type Input =
  | 'version'
  | 'versionRefused'
  | 'chooseAnonymous'
  | 'choosePlain'
  | 'choosePlainAtOnce'
  | 'chooseDigest'
  | 'plainAck'
  | 'challenge'
  | 'rspauth'
  | 'success'
  | 'offer'
  | 'acceptAck'
  | 'fail';

const NEXT: Record<ClientState, Partial<Record<Input, ClientState>>> = {
  start: { version: 'sentVersion', fail: 'failed' },
  sentVersion: {
    versionRefused: 'refused',
    chooseAnonymous: 'authAnonymous',
    choosePlain: 'authPlain',
    choosePlainAtOnce: 'plainCred',
    chooseDigest: 'authDigest',
    fail: 'failed',
  },
  authAnonymous: { success: 'requested', fail: 'failed' },
  authPlain: { plainAck: 'plainCred', fail: 'failed' },
  plainCred: { success: 'requested', fail: 'failed' },
  authDigest: { challenge: 'md5Response', fail: 'failed' },
  md5Response: { rspauth: 'md5Poll', fail: 'failed' },
  md5Poll: { success: 'requested', fail: 'failed' },
  requested: { offer: 'accepted', fail: 'failed' },
  accepted: { acceptAck: 'established', fail: 'failed' },
  established: {},
  refused: {},
  failed: {},
};

function advance(from: ClientState, input: Input): ClientState {
  const to = NEXT[from][input];
  if (to === undefined) throw new BrokerError('CLIENT_PROTOCOL', `${input} while ${from}`);
  return to;
}

// ---- specification and gogoc constants (docs/protocol.md §2.2, §2.3, §3.4) ----

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
/** A redirect's broker list is bounded like gogoc's (§10). */
const MAX_REDIRECT_BROKERS = 50;

export type ClientMechanism = 'ANONYMOUS' | 'PLAIN' | 'DIGEST-MD5';
export type AuthMethod = 'anonymous' | 'plain' | 'digest-md5' | 'any';
export type RequestedMode = 'v6udpv4' | 'v6v4' | 'v6anyv4';

/** 2.0.2 -> 2.0.1 -> 2.0.0 -> none: the fallback gogoc runs after `302` (§4). */
export function nextLowerVersion(v: TspVersion): TspVersion | undefined {
  return v === '2.0.2' ? '2.0.1' : v === '2.0.1' ? '2.0.0' : undefined;
}

export interface ClientSessionOptions {
  transport: 'udp' | 'tcp';
  version: TspVersion;
  auth: { method: AuthMethod; username?: string; password?: string };
  /** The `server=` string as configured (`192.0.2.1:3653`): DIGEST's digest-uri is `tsp/` + this (§5.4). */
  serverString: string;
  request: {
    mode: RequestedMode;
    /** Our local IPv4 toward the server: the create's client address, input to NAT detection (§8.5). */
    clientIpv4: string;
    /** The keepalive interval wished for; undefined sends no <keepalive> (gogoc keepalive=no). */
    keepaliveInterval?: number;
    /** Router mode: the prefix length asked for. */
    prefixLength?: number;
  };
  /** DIGEST-MD5 cnonce; gogoc sends its Unix time in decimal. Injected so tests can pin the recorded one. */
  cnonce: string;
  /** Send gogoc's C-string NUL after `AUTHENTICATE <MECH>\r\n` (default true, §2.7). */
  nulAfterAuthenticate?: boolean;
  /** First UDP sequence (28 bits; default gogoc's 0xF0). */
  firstSequence?: number;
  tcpReadTimeoutMs?: number;
  nowMs: number;
}

export type ClientEvent =
  | { type: 'capability'; tunnelTypes: string[]; mechanisms: string[] }
  /** The server refused this version; `next` is the one to try on a new socket. */
  | { type: 'versionRefused'; version: TspVersion; next: TspVersion }
  | { type: 'authenticated'; mechanism: ClientMechanism }
  /** The offer passed the checks; the accept is on its way. */
  | { type: 'offer'; offer: Offer }
  | { type: 'established'; offer: Offer }
  /** The session is over. `status` is the server's TSP status when it sent one; `brokers` a redirect list. */
  | { type: 'failed'; error: BrokerError; status?: number; brokers?: string[] };

export interface ClientStep {
  /** Each element is one UDP datagram (header included) or one TCP write. */
  send: Buffer[];
  events: ClientEvent[];
  /** Call timeout() at or after this time. */
  wakeAtMs?: number;
  /** Nothing more will happen: established, refused or failed. */
  done: boolean;
}

interface Outstanding {
  seq: number;
  body: Buffer;
  transmissions: number;
  sentAtMs: number;
  timeouts: number;
}

const EMPTY = Buffer.alloc(0);

export class ClientSession {
  private state: ClientState = 'start';
  private mechanism: ClientMechanism | undefined;
  private expectedRspauth = '';
  private offerSeen: Offer | undefined;
  private out: ClientStep = { send: [], events: [], done: false };
  // UDP
  private nextSeq: number;
  private readonly timestampBaseMs: number;
  private outstanding: Outstanding | undefined;
  private gotReply = false;
  private srttMs: number | undefined;
  private rttvarMs = 0;
  // TCP
  private inbuf: Buffer = EMPTY;
  private readDeadlineMs: number | undefined;

  constructor(private readonly opt: ClientSessionOptions) {
    this.nextSeq = (opt.firstSequence ?? GOGOC_FIRST_SEQUENCE) % SEQUENCE_MODULUS;
    // gogoc: milliseconds since the start of the second in which its reliable-UDP engine started (§2.2)
    this.timestampBaseMs = Math.floor(opt.nowMs / 1000) * 1000;
  }

  get currentState(): ClientState {
    return this.state;
  }
  get authMechanism(): ClientMechanism | undefined {
    return this.mechanism;
  }
  /** The smoothed round-trip time of the UDP exchanges so far, if any was measured. */
  get smoothedRttMs(): number | undefined {
    return this.srttMs;
  }

  /** Sends `VERSION=…`. */
  start(nowMs: number): ClientStep {
    this.begin();
    this.to('version');
    this.request(Buffer.from(`VERSION=${this.opt.version}\r\n`, 'latin1'), nowMs);
    return this.finish();
  }

  /** Bytes from the server: one UDP datagram (header included), or any TCP chunk. */
  receive(bytes: Uint8Array, nowMs: number): ClientStep {
    this.begin();
    if (this.isOver()) return this.finish();
    try {
      const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
      if (this.opt.transport === 'udp') this.receiveDatagram(chunk, nowMs);
      else {
        this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, chunk]) : Buffer.from(chunk);
        this.drainTcp(nowMs);
      }
    } catch (e) {
      this.fail(asClientError(e));
    }
    return this.finish();
  }

  /** Call at or after Step.wakeAtMs: retransmits, or gives up. */
  timeout(nowMs: number): ClientStep {
    this.begin();
    if (this.isOver()) return this.finish();
    if (this.opt.transport === 'udp') {
      const o = this.outstanding;
      if (o && nowMs >= o.sentAtMs + this.rtoMs(o)) {
        o.timeouts++;
        const limit = this.gotReply ? MAX_TRANSMISSIONS : FIRST_REPLY_TRANSMISSIONS;
        if (o.transmissions >= limit) {
          this.fail(
            this.gotReply
              ? new BrokerError('CLIENT_TIMEOUT', `no reply to ${this.state} after ${o.transmissions} transmissions`)
              : new BrokerError('CLIENT_UNREACHABLE', `no reply after ${o.transmissions} transmissions`),
          );
        } else this.transmit(o, nowMs);
      }
    } else if (this.readDeadlineMs !== undefined && nowMs >= this.readDeadlineMs) {
      this.fail(new BrokerError('CLIENT_TIMEOUT', `no reply within ${this.tcpTimeout()} ms while ${this.state}`));
    }
    return this.finish();
  }

  /** The TCP connection ended (EOF or error). Before `established` that ends the session. */
  closed(nowMs: number, reason = 'the server closed the connection'): ClientStep {
    this.begin();
    void nowMs;
    if (!this.isOver())
      this.fail(
        new BrokerError(
          this.state === 'sentVersion' && !this.gotReply ? 'CLIENT_UNREACHABLE' : 'CLIENT_IO',
          `${reason} while ${this.state}`,
        ),
      );
    return this.finish();
  }

  // ---------------------------------------------------------------- input paths

  private receiveDatagram(d: Buffer, nowMs: number): void {
    if (d.length < UDP_HEADER_BYTES || d[0]! >> 4 !== 0xf) return; // not control: ignore (§13.2)
    const { header, body } = decodeUdpHeader(d);
    const o = this.outstanding;
    if (!o || header.seq !== o.seq) return; // a late duplicate or a stranger: gogoc matches on seq only
    if (o.transmissions === 1) this.sampleRtt(nowMs - o.sentAtMs); // Karn: only unambiguous samples
    this.outstanding = undefined;
    this.gotReply = true;
    this.handle(stripTrailingNuls(body), nowMs);
  }

  private drainTcp(nowMs: number): void {
    for (;;) {
      if (this.isOver() || this.state === 'accepted') return;
      const message = this.takeTcpMessage();
      if (message === undefined) return;
      this.readDeadlineMs = undefined;
      this.gotReply = true;
      this.handle(message, nowMs);
    }
  }

  /** One whole reply from the TCP buffer, in the form the current state expects, or undefined for "need
   *  more bytes". */
  private takeTcpMessage(): Buffer | undefined {
    const b = this.inbuf;
    const lf = b.indexOf(0x0a);
    if (lf < 0) {
      if (b.length > MAX_CONTENT_LENGTH)
        throw new BrokerError('CLIENT_PROTOCOL', `no line end in the first ${b.length} bytes of a reply`);
      return undefined;
    }
    let end = lf + 1;
    const first = b.subarray(0, lf).toString('latin1').replace(/\r$/, '');
    const n = parseContentLengthLine(first);
    if (n !== undefined) {
      if (b.length < end + n) return undefined;
      end += n;
    } else if (statusOf(first) > 1000) {
      // a bare redirect carries its broker list after the status line (§10)
      const close = b.indexOf('</tunnel>', lf, 'latin1');
      if (close < 0) return b.length > MAX_CONTENT_LENGTH ? b : undefined;
      end = close + '</tunnel>'.length;
    }
    // The leading NUL some servers echo is not ours to keep.
    const message = b.subarray(0, end);
    this.inbuf = b.subarray(end);
    return message;
  }

  // ---------------------------------------------------------------- the protocol

  private handle(body: Buffer, nowMs: number): void {
    switch (this.state) {
      case 'sentVersion':
        return this.onVersionReply(lineOf(body), body, nowMs);
      case 'authAnonymous':
      case 'plainCred':
      case 'md5Poll':
        return this.onAuthStatus(lineOf(body), nowMs);
      case 'authPlain': {
        // gogoc reads only the header of this ack (§5.3); a 300 there still means a refusal
        const text = lineOf(body);
        if (statusOf(text) === 300) return this.failStatus(text, body);
        this.to('plainAck');
        return this.request(encodePlain({ username: this.username(), password: this.password() }), nowMs);
      }
      case 'authDigest':
        return this.onChallenge(lineOf(body), body, nowMs);
      case 'md5Response':
        return this.onRspauth(lineOf(body), body, nowMs);
      case 'requested':
        return this.onOffer(body, nowMs);
      case 'accepted':
        // UDP: the header-only ack of the accept; any body is ignored, as gogoc does
        this.to('acceptAck');
        this.out.events.push({ type: 'established', offer: this.offerSeen! });
        return;
      default:
        throw new BrokerError('CLIENT_PROTOCOL', `unexpected reply while ${this.state}`);
    }
  }

  private onVersionReply(line: string, body: Buffer, nowMs: number): void {
    if (!/^capability(\s|$)/i.test(line)) {
      const status = statusOf(line);
      if (status === 302) {
        const next = nextLowerVersion(this.opt.version);
        if (next === undefined)
          return this.fail(
            new BrokerError('CLIENT_VERSION', `the server refused every TSP version down to 2.0.0: ${line}`),
            302,
          );
        this.to('versionRefused');
        this.out.events.push({ type: 'versionRefused', version: this.opt.version, next });
        return;
      }
      return this.failStatus(line, body);
    }
    // Case-insensitive, and a last token without CR LF still counts (§13.2: where gogoc is fragile).
    const tokens = line.split(/\s+/).slice(1).filter(Boolean);
    const values = (key: string) =>
      tokens
        .map((t) => t.split('='))
        .filter(([k, v]) => k!.toUpperCase() === key && v !== undefined && v !== '')
        .map(([, v]) => v!.toUpperCase());
    const tunnelTypes = values('TUNNEL');
    const mechanisms = values('AUTH');
    this.out.events.push({ type: 'capability', tunnelTypes, mechanisms });
    const mode = this.opt.request.mode;
    const usable =
      mode === 'v6anyv4'
        ? tunnelTypes.includes('V6V4') || (this.opt.transport === 'udp' && tunnelTypes.includes('V6UDPV4'))
        : tunnelTypes.includes(mode.toUpperCase());
    if (!usable)
      return this.fail(
        new BrokerError(
          'CLIENT_UNSUPPORTED_MODE',
          `the server does not offer ${mode} (it offers ${tunnelTypes.join(', ').toLowerCase() || 'no tunnel type'})`,
        ),
      );
    const chosen = chooseMechanism(this.opt.auth.method, mechanisms);
    if (!chosen)
      return this.fail(
        new BrokerError(
          'CLIENT_NO_MECHANISM',
          `auth_method ${this.opt.auth.method} has nothing in common with the server's ${mechanisms.join(', ') || 'no mechanisms'}`,
        ),
      );
    this.mechanism = chosen;
    const authenticate = Buffer.from(
      `AUTHENTICATE ${chosen}\r\n${this.opt.nulAfterAuthenticate === false ? '' : '\0'}`,
      'latin1',
    );
    if (chosen === 'ANONYMOUS') {
      this.to('chooseAnonymous');
      this.request(authenticate, nowMs);
    } else if (chosen === 'DIGEST-MD5') {
      this.to('chooseDigest');
      this.request(authenticate, nowMs);
    } else if (this.opt.transport === 'tcp') {
      // TCP: the credentials follow without waiting; the server acknowledges nothing in between (§5.3)
      this.to('choosePlainAtOnce');
      this.out.send.push(authenticate);
      this.request(encodePlain({ username: this.username(), password: this.password() }), nowMs);
    } else {
      this.to('choosePlain');
      this.request(authenticate, nowMs);
    }
  }

  private onAuthStatus(line: string, nowMs: number): void {
    if (statusOf(line) !== 200) return this.failStatus(line, Buffer.from(line, 'latin1'));
    this.to('success');
    this.out.events.push({ type: 'authenticated', mechanism: this.mechanism! });
    const r = this.opt.request;
    const create = writeCreateRequest({
      type: r.mode,
      clientIpv4: r.clientIpv4,
      ...(r.keepaliveInterval !== undefined ? { keepaliveInterval: r.keepaliveInterval } : {}),
      ...(r.prefixLength !== undefined ? { prefixLength: r.prefixLength } : {}),
    });
    this.request(framedRequest(create), nowMs);
  }

  private onChallenge(line: string, body: Buffer, nowMs: number): void {
    if (/^\d{3,4}(\s|$)/.test(line)) return this.failStatus(line, body);
    const decoded = decodeBase64Line(line, 'DIGEST-MD5 challenge');
    const challenge = parseChallenge(decoded);
    const r = buildClientResponse({
      username: this.username(),
      password: this.password(),
      challenge,
      cnonce: this.opt.cnonce,
      digestUri: `tsp/${this.opt.serverString}`,
      // §5.6: on 2.0.0, gw6c and gogoc compute the truncated HA1 when X holds a 0x00
      quirk200: this.opt.version === '2.0.0',
    });
    this.expectedRspauth = r.expectedRspauth;
    this.to('challenge');
    this.request(Buffer.from(`${Buffer.from(r.text, 'utf8').toString('base64')}\r\n`, 'latin1'), nowMs);
  }

  private onRspauth(line: string, body: Buffer, nowMs: number): void {
    if (statusOf(line) === 300) return this.failStatus(line, body);
    // A server that skips rspauth (or sends 200 directly) has not proven it knows the password: gogoc
    // dereferences NULL there; we refuse (§13.2).
    let decoded = '';
    try {
      decoded = decodeBase64Line(line, 'rspauth');
    } catch {
      decoded = '';
    }
    if (!checkRspauth(decoded, this.expectedRspauth))
      return this.fail(
        new BrokerError(
          'CLIENT_AUTH_FAILED',
          `the server's rspauth is ${/rspauth\s*=/.test(decoded) ? 'wrong' : 'missing'}: it did not prove it knows the password`,
        ),
      );
    this.to('rspauth');
    if (this.opt.transport === 'udp')
      this.request(EMPTY, nowMs); // the empty poll the 200 answers (§5.4)
    else this.expectReply(nowMs);
  }

  private onOffer(body: Buffer, nowMs: number): void {
    const text = body.toString('latin1');
    const lf = text.indexOf('\n');
    const n = lf < 0 ? undefined : parseContentLengthLine(text.slice(0, lf).replace(/\r$/, ''));
    if (n === undefined) {
      // A bare status line where a framed reply belongs: gogoc loops on it as an I/O error; we report it.
      if (/^\d{3,4}(\s|$)/.test(text)) return this.failStatus(lineOf(body), body);
      throw new BrokerError('CLIENT_PROTOCOL', 'the reply to create is not a Content-length message');
    }
    const payload = body.subarray(lf + 1);
    const extra = payload.subarray(Math.min(n, payload.length));
    if (payload.length < n || extra.some((c) => c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09 && c !== 0))
      throw new BrokerError(
        'CLIENT_PROTOCOL',
        `Content-length ${n} but ${payload.length} bytes follow: the server's framing is wrong`,
      );
    const framed = payload.subarray(0, n).toString('utf8');
    const statusEnd = framed.indexOf('\n');
    const statusText = (statusEnd < 0 ? framed : framed.slice(0, statusEnd)).replace(/\r$/, '');
    if (statusOf(statusText) !== 200) return this.failStatus(statusText, Buffer.from(framed, 'utf8'));
    const xmlStart = framed.indexOf('<', statusEnd + 1);
    if (statusEnd < 0 || xmlStart < 0) throw new BrokerError('CLIENT_BAD_OFFER', 'the offer carries no XML');
    let offer: Offer;
    try {
      offer = parseOffer(framed.slice(xmlStart));
    } catch (e) {
      throw new BrokerError('CLIENT_BAD_OFFER', `unusable offer: ${(e as Error).message}`, { cause: e });
    }
    this.checkOffer(offer);
    this.offerSeen = offer;
    this.to('offer');
    this.out.events.push({ type: 'offer', offer });
    const accept = framedRequest(writeActionRequest('accept'));
    if (this.opt.transport === 'udp') this.request(accept, nowMs);
    else {
      // TCP: the server answers nothing to the accept (§6.7)
      this.out.send.push(accept);
      this.to('acceptAck');
      this.out.events.push({ type: 'established', offer });
    }
  }

  /** What a client must check before configuring anything (§13.2 "Offer checks"). */
  private checkOffer(offer: Offer): void {
    const mode = this.opt.request.mode;
    if (mode !== 'v6anyv4' && offer.type !== mode)
      throw new BrokerError('CLIENT_BAD_OFFER', `asked for ${mode}, offered ${offer.type}`);
    if (offer.type === 'v6udpv4' && this.opt.transport === 'tcp')
      throw new BrokerError('CLIENT_BAD_OFFER', 'offered v6udpv4 over TCP: its data path is the TSP UDP flow');
    if (this.opt.request.prefixLength !== undefined && !offer.prefix)
      throw new BrokerError('CLIENT_BAD_OFFER', 'router mode asked for a prefix; the offer has none');
    if (offer.prefix && offer.prefix.length > 64)
      throw new BrokerError('CLIENT_BAD_OFFER', `delegated prefix length ${offer.prefix.length} is longer than 64`);
    if (offer.keepalive && offer.keepalive.address === '::')
      throw new BrokerError('CLIENT_BAD_OFFER', 'keepalive address :: is a placeholder, not an echo target');
  }

  // ---------------------------------------------------------------- sending and timers

  /** Sends a request that expects one reply. */
  private request(body: Buffer, nowMs: number): void {
    if (this.opt.transport === 'tcp') {
      this.out.send.push(body);
      this.expectReply(nowMs);
      return;
    }
    const o: Outstanding = { seq: this.nextSeq, body, transmissions: 0, sentAtMs: nowMs, timeouts: 0 };
    this.nextSeq = (this.nextSeq + 1) % SEQUENCE_MODULUS;
    this.outstanding = o;
    this.transmit(o, nowMs);
  }

  private transmit(o: Outstanding, nowMs: number): void {
    o.transmissions++;
    o.sentAtMs = nowMs;
    // every transmission carries a new timestamp; the sequence stays (§2.2)
    const header = encodeUdpHeader({ seq: o.seq, timestamp: (nowMs - this.timestampBaseMs) >>> 0 });
    this.out.send.push(Buffer.concat([header, o.body]));
  }

  private expectReply(nowMs: number): void {
    this.readDeadlineMs = nowMs + this.tcpTimeout();
  }

  private tcpTimeout(): number {
    return this.opt.tcpReadTimeoutMs ?? DEFAULT_TCP_READ_TIMEOUT_MS;
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

  // ---------------------------------------------------------------- helpers

  private username(): string {
    return this.opt.auth.username ?? '';
  }
  private password(): string {
    return this.opt.auth.password ?? '';
  }

  private to(input: Input): void {
    this.state = advance(this.state, input);
  }

  private isOver(): boolean {
    return this.state === 'established' || this.state === 'refused' || this.state === 'failed';
  }

  private failStatus(line: string, body: Buffer): void {
    const status = statusOf(line);
    const text = line.slice(0, 200);
    if (status === 300) return this.fail(new BrokerError('CLIENT_AUTH_FAILED', `the server said: ${text}`), status);
    if (status === 303)
      return this.fail(new BrokerError('CLIENT_UNSUPPORTED_MODE', `the server said: ${text}`), status);
    if (status === 530) return this.fail(new BrokerError('CLIENT_BUSY', `the server said: ${text}`), status);
    if (status > 1000) {
      const brokers = redirectList(body.toString('utf8'));
      const error = new BrokerError(
        'CLIENT_REDIRECT',
        `the server redirects to ${brokers.length ? brokers.join(', ') : 'an empty broker list'}`,
      );
      this.out.events.push({ type: 'failed', error, status, brokers });
      this.state = 'failed';
      this.outstanding = undefined;
      this.readDeadlineMs = undefined;
      return;
    }
    if (status === 0)
      return this.fail(new BrokerError('CLIENT_PROTOCOL', `unexpected reply while ${this.state}: ${text}`));
    this.fail(new BrokerError('CLIENT_SERVER_ERROR', `the server said: ${text}`), status);
  }

  private fail(error: BrokerError, status?: number): void {
    if (this.isOver()) return;
    this.state = 'failed';
    this.outstanding = undefined;
    this.readDeadlineMs = undefined;
    this.out.events.push({ type: 'failed', error, ...(status !== undefined ? { status } : {}) });
  }

  private begin(): void {
    this.out = { send: [], events: [], done: false };
  }

  private finish(): ClientStep {
    const step = this.out;
    step.done = this.isOver() || (this.opt.transport === 'tcp' && this.state === 'established');
    if (!step.done) {
      const o = this.outstanding;
      if (this.opt.transport === 'udp' && o) step.wakeAtMs = o.sentAtMs + this.rtoMs(o);
      else if (this.opt.transport === 'tcp' && this.readDeadlineMs !== undefined) step.wakeAtMs = this.readDeadlineMs;
    }
    return step;
  }
}

// ---- pure helpers ----

/** DIGEST-MD5 over PLAIN for `any` (never ANONYMOUS, and never PASSDSS-3DES-1, which we do not implement). */
export function chooseMechanism(method: AuthMethod, offered: readonly string[]): ClientMechanism | undefined {
  const has = (m: ClientMechanism) => offered.includes(m);
  if (method === 'any') return has('DIGEST-MD5') ? 'DIGEST-MD5' : has('PLAIN') ? 'PLAIN' : undefined;
  const want = method.toUpperCase() as ClientMechanism;
  return has(want) ? want : undefined;
}

/** The numeric status at the start of a line, or 0 when there is none. */
function statusOf(line: string): number {
  const m = /^\s*(\d{3,4})(\s|$)/.exec(line);
  return m ? Number(m[1]) : 0;
}

/** The first line of a reply, without its line end, NULs or a stray leading NUL. */
function lineOf(body: Buffer): string {
  const text = stripTrailingNuls(body).toString('latin1').replace(/^\0+/, '');
  const lf = text.indexOf('\n');
  return (lf < 0 ? text : text.slice(0, lf)).replace(/\r$/, '').trim();
}

function decodeBase64Line(line: string, what: string): string {
  const t = line.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) throw new BrokerError('CLIENT_PROTOCOL', `${what} is not base64: ${t}`);
  return Buffer.from(t, 'base64').toString('utf8');
}

/** The broker list of a redirect (§10): the <address> entries of its <broker> element, IPv6 ones bracketed as
 *  gogoc uses them. Unparseable XML yields an empty list. */
export function redirectList(body: string): string[] {
  const at = body.indexOf('<');
  if (at < 0) return [];
  try {
    const root = parseXml(body.slice(at).replace(/[\r\n\0\s]+$/, ''));
    const broker = root.children.find((c) => c.name === 'broker');
    return (broker?.children ?? [])
      .filter((c) => c.name === 'address' && c.text !== '')
      .slice(0, MAX_REDIRECT_BROKERS)
      .map((c) => ((c.attrs.type ?? '').toLowerCase() === 'ipv6' ? `[${c.text}]` : c.text));
  } catch {
    return [];
  }
}

function asClientError(e: unknown): BrokerError {
  if (e instanceof BrokerError && e.code.startsWith('CLIENT_')) return e;
  const code: ErrorCode = 'CLIENT_PROTOCOL';
  return new BrokerError(code, e instanceof Error ? e.message : String(e), { cause: e });
}
