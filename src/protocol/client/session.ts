/** @module protocol/client/session: one TSP client session (our tspc's side of docs/protocol.md §3.3), sans-I/O
 *  (docs/style.md §1), the mirror of server/session.ts. It is started, fed the bytes that arrive and the time, and
 *  returns a Step: bytes to send (each element one UDP datagram, header included, or one TCP write), events,
 *  the next deadline, and whether the session is over. The caller owns the socket: a `302` means "open a new
 *  one and start a new session with `nextLowerVersion`", which is what gogoc does (§4).
 *
 *  States and transitions: client/state.ts. The transport is the framing chosen at construction
 *  (framing/client.ts): sequences, retransmission and the TCP read timeout live there, and where the transports
 *  differ in what is sent, the framing says so as data. */

import { BrokerError } from '../../errors.js';
import type { TspVersion } from '../constants.js';
import { framedRequest } from '../framing/content-length.js';
import {
  DEFAULT_TCP_READ_TIMEOUT_MS,
  GOGOC_FIRST_SEQUENCE,
  TcpClientFraming,
  UdpClientFraming,
  type ClientFraming,
} from '../framing/client.js';
import { buildClientResponse, checkRspauth, parseChallenge } from '../sasl/digest-md5.js';
import { encodePlain } from '../sasl/plain.js';
import { statusOfLine } from '../status.js';
import { type Offer } from '../xml.js';
import { writeActionRequest, writeCreateRequest } from '../request-writer.js';
import {
  asClientError,
  checkOffer,
  chooseMechanism,
  decodeBase64Line,
  isStatusLine,
  lineOf,
  nextLowerVersion,
  parseCapability,
  readOfferReply,
  redirectList,
  type AuthMethod,
  type ClientMechanism,
  type RequestedMode,
} from './replies.js';
import { advance, isFinal, type ClientInput, type ClientState } from './state.js';

export type { ClientState } from './state.js';
export type { AuthMethod, ClientMechanism, RequestedMode } from './replies.js';

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
    clientIpv6?: string; // v4v6: our local IPv6 toward the server instead (TSP runs over IPv6)
    /** The keepalive interval wished for; undefined sends no <keepalive> (gogoc keepalive=no). */
    keepaliveInterval?: number;
    /** Router mode: the prefix length asked for, and name servers for its reverse zone (gogoc dns_server). */
    prefixLength?: number;
    dnsServers?: string[];
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

export class ClientSession {
  private state: ClientState = 'start';
  private mechanism: ClientMechanism | undefined;
  private expectedRspauth = '';
  private offerSeen: Offer | undefined;
  private out: ClientStep = { send: [], events: [], done: false };
  private readonly framing: ClientFraming;

  constructor(private readonly opt: ClientSessionOptions) {
    this.framing =
      opt.transport === 'udp'
        ? new UdpClientFraming(opt.firstSequence ?? GOGOC_FIRST_SEQUENCE, opt.nowMs)
        : new TcpClientFraming(opt.tcpReadTimeoutMs ?? DEFAULT_TCP_READ_TIMEOUT_MS);
  }

  get currentState(): ClientState {
    return this.state;
  }
  get authMechanism(): ClientMechanism | undefined {
    return this.mechanism;
  }
  /** The smoothed round-trip time of the UDP exchanges so far, if any was measured. */
  get smoothedRttMs(): number | undefined {
    return this.framing.smoothedRttMs;
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
    if (isFinal(this.state)) return this.finish();
    try {
      this.framing.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), nowMs);
      while (!isFinal(this.state)) {
        const reply = this.framing.next();
        if (reply === undefined) break;
        this.handle(reply, nowMs);
      }
    } catch (e) {
      this.fail(asClientError(e));
    }
    return this.finish();
  }

  /** Call at or after Step.wakeAtMs: retransmits, or gives up. */
  timeout(nowMs: number): ClientStep {
    this.begin();
    if (isFinal(this.state)) return this.finish();
    const error = this.framing.timeout(nowMs, this.out.send, this.state);
    if (error) this.fail(error);
    return this.finish();
  }

  /** The TCP connection ended (EOF or error). Before `established` that ends the session. */
  closed(nowMs: number, reason = 'the server closed the connection'): ClientStep {
    this.begin();
    void nowMs;
    if (!isFinal(this.state))
      this.fail(
        new BrokerError(
          this.state === 'sentVersion' && !this.framing.gotReply ? 'CLIENT_UNREACHABLE' : 'CLIENT_IO',
          `${reason} while ${this.state}`,
        ),
      );
    return this.finish();
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
        if (statusOfLine(text) === 300) return this.failStatus(text, body);
        this.to('plainAck');
        return this.request(this.plainCredentials(), nowMs);
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
      const status = statusOfLine(line);
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
    const { tunnelTypes, mechanisms } = parseCapability(line);
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
    this.authenticate(chosen, nowMs);
  }

  private authenticate(chosen: ClientMechanism, nowMs: number): void {
    const authenticate = Buffer.from(
      `AUTHENTICATE ${chosen}\r\n${this.opt.nulAfterAuthenticate === false ? '' : '\0'}`,
      'latin1',
    );
    if (chosen === 'PLAIN' && this.framing.plainAtOnce) {
      // TCP: the credentials follow without waiting; the server acknowledges nothing in between (§5.3)
      this.to('choosePlainAtOnce');
      this.framing.send(authenticate, this.out.send);
      this.request(this.plainCredentials(), nowMs);
      return;
    }
    this.to(chosen === 'ANONYMOUS' ? 'chooseAnonymous' : chosen === 'DIGEST-MD5' ? 'chooseDigest' : 'choosePlain');
    this.request(authenticate, nowMs);
  }

  private onAuthStatus(line: string, nowMs: number): void {
    if (statusOfLine(line) !== 200) return this.failStatus(line, Buffer.from(line, 'latin1'));
    this.to('success');
    this.out.events.push({ type: 'authenticated', mechanism: this.mechanism! });
    const r = this.opt.request;
    const { mode, ...fields } = r; // the writer leaves out what is undefined or empty
    const create = writeCreateRequest({ type: mode, ...fields });
    this.request(framedRequest(create), nowMs);
  }

  private onChallenge(line: string, body: Buffer, nowMs: number): void {
    if (isStatusLine(line)) return this.failStatus(line, body);
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
    if (statusOfLine(line) === 300) return this.failStatus(line, body);
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
    if (this.framing.pollAfterRspauth)
      this.request(Buffer.alloc(0), nowMs); // the empty poll the 200 answers (§5.4)
    else this.framing.expectReply(nowMs);
  }

  private onOffer(body: Buffer, nowMs: number): void {
    const r = readOfferReply(body);
    if (r.kind === 'status') return this.failStatus(r.line, r.body);
    const offer = r.offer;
    checkOffer(offer, this.opt.request, this.opt.transport);
    this.offerSeen = offer;
    this.to('offer');
    this.out.events.push({ type: 'offer', offer });
    const accept = framedRequest(writeActionRequest('accept'));
    if (this.framing.acceptAcked) this.request(accept, nowMs);
    else {
      // TCP: the server answers nothing to the accept (§6.7)
      this.framing.send(accept, this.out.send);
      this.to('acceptAck');
      this.out.events.push({ type: 'established', offer });
    }
  }

  // ---------------------------------------------------------------- helpers

  /** Sends a request that expects one reply. */
  private request(body: Buffer, nowMs: number): void {
    this.framing.request(body, nowMs, this.out.send);
  }

  private plainCredentials(): Buffer {
    return encodePlain({ username: this.username(), password: this.password() });
  }
  private username(): string {
    return this.opt.auth.username ?? '';
  }
  private password(): string {
    return this.opt.auth.password ?? '';
  }

  private to(input: ClientInput): void {
    this.state = advance(this.state, input);
  }

  private failStatus(line: string, body: Buffer): void {
    const status = statusOfLine(line);
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
      return this.fail(error, status, brokers);
    }
    if (status === 0)
      return this.fail(new BrokerError('CLIENT_PROTOCOL', `unexpected reply while ${this.state}: ${text}`));
    this.fail(new BrokerError('CLIENT_SERVER_ERROR', `the server said: ${text}`), status);
  }

  /** Ends the session with `error`: the one way into `failed`. */
  private fail(error: BrokerError, status?: number, brokers?: string[]): void {
    if (isFinal(this.state)) return;
    this.to('fail');
    this.framing.stop();
    this.out.events.push({
      type: 'failed',
      error,
      ...(status !== undefined ? { status } : {}),
      ...(brokers !== undefined ? { brokers } : {}),
    });
  }

  private begin(): void {
    this.out = { send: [], events: [], done: false };
  }

  private finish(): ClientStep {
    const step = this.out;
    step.done = isFinal(this.state);
    if (!step.done) {
      const wake = this.framing.wakeAtMs();
      if (wake !== undefined) step.wakeAtMs = wake;
    }
    return step;
  }
}
