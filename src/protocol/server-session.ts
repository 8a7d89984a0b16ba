/** @module protocol/server-session: one TSP server session (a UDP client ip:port, or a TCP connection),
 *  sans-I/O (docs/style.md §1). It is fed bytes and the time, and returns a Step: bytes to send (each element is
 *  one datagram, or one TCP write), events, the next deadline, and whether the session is done.
 *
 *  Decisions that need the store or policy are asked for by events and answered by calling a method:
 *    verifyPlain      -> plainResult(ok)
 *    lookupDigest     -> digestSecret(x)
 *    tunnelRequested  -> offerDecision({ offer } | { error })
 *    offerAccepted    -> acceptDone(error?)         (commit before the ack goes on the wire)
 *    deleteRequested  -> deleteDone(error?)
 *    infoRequested    -> infoDone(offer?)
 *  While one is pending, TCP bytes wait in the buffer and UDP retransmissions are ignored (the reply is not
 *  ready yet; the client retransmits again). States and transitions: server-state.ts.
 *
 *  UDP rules (docs/protocol.md §2.3): every datagram gets exactly one reply echoing its header; a repeated
 *  sequence gets the cached reply and is not re-executed; an older sequence is dropped; a body starting with
 *  VERSION= restarts the session. TCP rules (§2.5): a byte stream (lines and Content-length), exactly one NUL
 *  discarded after an AUTHENTICATE line, rspauth and 200 as two writes with a pause. */

import { BrokerError, RemoteProtocolError, isBrokerError } from '../errors.js';
import {
  AMPLIFICATION_FACTOR,
  MAX_CONTROL_DATAGRAM,
  MAX_LINE_BYTES,
  MAX_REPLY_RESENDS,
  SUPPORTED_VERSIONS,
  TCP_LINGER_MS,
  TCP_RSPAUTH_PAUSE_MS,
  UDP_IPV4_OVERHEAD,
  type TspVersion,
} from './constants.js';
import {
  compareSeq,
  decodeUdpHeader,
  encodeUdpHeader,
  framedReply,
  lineText,
  parseContentLengthLine,
  splitFramed,
  statusLine,
  type UdpHeader,
} from './framing.js';
import { advance, isHalfOpen, readsLines, type Input, type State } from './server-state.js';
import { buildChallenge, parseResponse, verifyResponse, type DigestResponse } from './sasl/digest-md5.js';
import { parsePlain } from './sasl/plain.js';
import { parseTunnelRequest, writeOffer, type Offer, type TunnelRequest } from './xml.js';

export type Mechanism = 'ANONYMOUS' | 'PLAIN' | 'DIGEST-MD5';

export interface ServerSessionOptions {
  transport: 'udp' | 'tcp';
  /** Concrete tunnel types advertised in CAPABILITY (upper-cased there). */
  tunnelTypes: readonly ('v6v4' | 'v6udpv4')[];
  /** Enabled mechanisms, in the order advertised. */
  mechanisms: readonly Mechanism[];
  realm: string;
  /** Accept the TSP 2.0.0 truncated-HA1 DIGEST-MD5 form (docs/protocol.md §5.6) from 2.0.0 clients. Off by
   *  default: it is weaker than the password (config auth.digestMd5Quirk200). */
  quirk200?: boolean;
  negotiationTimeoutMs: number;
  /** UDP: the session begins after a VERSION this version that was answered without state (answerVersion()),
   *  so its first datagram is the client's AUTHENTICATE. Undefined: it begins at VERSION. */
  afterVersion?: TspVersion;
  /** Fresh DIGEST nonce (≥ 64 random bits, hex); injected so tests can pin the recorded one. */
  newNonce: () => string;
  nowMs: number;
}

export type SessionEvent =
  | { type: 'version'; version: TspVersion }
  | { type: 'versionRefused'; version: string }
  | { type: 'verifyPlain'; username: string; password: string; sourceValidated: boolean }
  | { type: 'lookupDigest'; username: string }
  | { type: 'authenticated'; mechanism: Mechanism; username: string | null }
  /** `sourceValidated`: the peer has shown it receives our datagrams (TCP, or a DIGEST-MD5 response that
   *  carries the nonce we sent). A failure from an unvalidated source may come from a spoofed address. */
  | { type: 'authFailed'; mechanism: string; username: string | null; reason: string; sourceValidated: boolean }
  | { type: 'tunnelRequested'; request: TunnelRequest }
  | { type: 'offerAccepted' }
  | { type: 'offerWithdrawn'; reason: 'rejected' | 'timeout' | 'closed' | 'superseded' | 'restarted' }
  | { type: 'deleteRequested' }
  | { type: 'infoRequested' }
  | { type: 'protocolError'; code: string; status: number; message: string }
  /** A UDP reply was not sent: it would break the anti-amplification budget, or its request was repeated more
   *  than MAX_REPLY_RESENDS times. */
  | { type: 'replyWithheld'; reason: 'amplification' | 'resends' }
  | { type: 'closed'; reason: 'done' | 'timeout' | 'error' | 'peer'; established: boolean };

export interface Step {
  /** Each element is one UDP datagram (header included) or one TCP write. */
  send: Buffer[];
  events: SessionEvent[];
  /** Call timeout() at or after this time. Undefined: no timer needed. */
  wakeAtMs?: number;
  /** The adapter may forget this session (UDP) or end the connection after writing (TCP). */
  done: boolean;
}

export type Pending = 'plain' | 'digest' | 'offer' | 'accept' | 'delete' | 'info';

const EMPTY = Buffer.alloc(0);
const SUCCESS = statusLine(200, 'Success');
const AUTH_FAILED = statusLine(300, 'Authentication failed');

export class ServerSession {
  private state: State = 'start';
  private pending: Pending | undefined;
  private version: TspVersion | undefined;
  private mechanism: Mechanism | undefined;
  private user: string | null = null;
  private digest: { nonce: string; response?: DigestResponse } | undefined;
  private deadlineMs: number;
  private pauseUntilMs: number | undefined;
  // UDP
  private lastSeq: number | undefined;
  private cachedReply: Buffer | undefined;
  private replyHeader: UdpHeader | undefined;
  private resends = 0;
  /** Bytes on the wire from and to the peer (anti-amplification, RFC 9000 §8.1 applied to TSP). */
  private wireIn = 0;
  private wireOut = 0;
  /** The peer has shown it receives what we send: TCP (the handshake), or a DIGEST response with our nonce. */
  private validated: boolean;
  // TCP
  private inbuf: Buffer = EMPTY;
  private skipNul = false;
  private lingerDone = false;
  /** A Step with done was returned: the adapter forgets the session, and nothing it is fed afterwards (a late
   *  broker answer, a stray timer, bytes) makes it send or ask anything again. */
  private finished = false;
  // the Step being built
  private out: Step = { send: [], events: [], done: false };

  constructor(private readonly opt: ServerSessionOptions) {
    this.deadlineMs = opt.nowMs + opt.negotiationTimeoutMs;
    this.validated = opt.transport === 'tcp';
    if (opt.afterVersion !== undefined) {
      this.version = opt.afterVersion;
      this.state = advance('start', 'version');
    }
  }

  get currentState(): State {
    return this.state;
  }
  get isHalfOpen(): boolean {
    return isHalfOpen(this.state);
  }
  get username(): string | null {
    return this.user;
  }
  get authMechanism(): Mechanism | undefined {
    return this.mechanism;
  }
  get negotiatedVersion(): TspVersion | undefined {
    return this.version;
  }
  /** The decision this session waits for, if any. A caller whose decision arrives when this no longer names it
   *  (the session timed out, closed or restarted meanwhile) must roll back what it prepared. */
  get awaiting(): Pending | undefined {
    return this.pending;
  }

  /** Whether the peer has shown it receives our datagrams (always over TCP). */
  get sourceValidated(): boolean {
    return this.validated;
  }

  capabilityLine(): Buffer {
    return capabilityLine(this.opt);
  }

  // ---------------------------------------------------------------- input

  receive(bytes: Uint8Array, nowMs: number): Step {
    this.begin();
    if (this.finished) return this.finish(nowMs);
    try {
      if (this.opt.transport === 'udp')
        this.receiveDatagram(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), nowMs);
      else {
        this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, bytes]) : Buffer.from(bytes);
        this.drainTcp(nowMs);
      }
    } catch (e) {
      this.failWith(e, nowMs);
    }
    return this.finish(nowMs);
  }

  /** Call at or after Step.wakeAtMs. */
  timeout(nowMs: number): Step {
    this.begin();
    if (this.finished) return this.finish(nowMs);
    try {
      if (this.pauseUntilMs !== undefined && nowMs >= this.pauseUntilMs) {
        this.pauseUntilMs = undefined;
        // TCP DIGEST: `200 Success` as its own write, after the pause (recording 07)
        this.out.send.push(SUCCESS);
        this.to('digestDone', nowMs);
        // what the client sent during the pause is read now, and may be malformed
        this.tryDrain(nowMs);
      }
    } catch (e) {
      this.failWith(e, nowMs);
    }
    if (this.state === 'closed' && this.lingerDone === false && nowMs >= this.deadlineMs) {
      this.lingerDone = true;
      this.out.done = true;
    } else if (this.state === 'established' && nowMs >= this.deadlineMs) {
      // UDP: the accept's reply cache has served its purpose; TCP: the linger after the accept is over. The
      // tunnel lives on in the broker either way. A request still being decided (a create after the accept) is
      // dropped with the session: its late answer finds nothing to resume, and the broker rolls it back.
      this.out.done = true;
    } else if (isHalfOpen(this.state) && nowMs >= this.deadlineMs) {
      if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'timeout' });
      this.pending = undefined;
      this.state = 'closed';
      this.out.events.push({ type: 'closed', reason: 'timeout', established: false });
      this.out.done = true;
      this.lingerDone = true;
    }
    return this.finish(nowMs);
  }

  /** The transport ended (TCP EOF or error) or the adapter drops the session. Never tears a tunnel down:
   *  an accepted v6v4 tunnel outlives its TCP connection (docs/protocol.md §2.5). */
  close(nowMs: number): Step {
    this.begin();
    if (this.finished) return this.finish(nowMs);
    if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'closed' });
    const established = this.state === 'established';
    if (this.state !== 'closed') this.out.events.push({ type: 'closed', reason: 'peer', established });
    this.state = 'closed';
    this.pending = undefined;
    this.pauseUntilMs = undefined;
    this.out.done = true;
    return this.finish(nowMs);
  }

  // ---------------------------------------------------------------- answers to requests

  plainResult(ok: boolean, reason: string, nowMs: number): Step {
    return this.resume('plain', nowMs, () => {
      if (!ok) return this.authFail(reason);
      this.out.events.push({ type: 'authenticated', mechanism: 'PLAIN', username: this.user });
      this.reply(SUCCESS);
      this.to('credentialsOk', nowMs);
    });
  }

  /** `x` is the stored MD5(user:realm:pass), or undefined for an unknown, disabled or throttled user. */
  digestSecret(x: Buffer | undefined, reason: string, nowMs: number): Step {
    return this.resume('digest', nowMs, () => {
      const r = this.digest?.response;
      // a response that carries the nonce we sent proves the peer receives our datagrams
      if (r && this.digest && r.nonce === this.digest.nonce) this.validated = true;
      if (!x || !r || !this.digest) return this.authFail(reason || 'unknown user');
      const quirk = this.opt.quirk200 === true && this.version === '2.0.0';
      const v = verifyResponse(r, x, { realm: this.opt.realm, nonce: this.digest.nonce }, quirk);
      this.digest = undefined; // the nonce is single use
      if (!v.ok) return this.authFail(v.reason);
      this.out.events.push({ type: 'authenticated', mechanism: 'DIGEST-MD5', username: this.user });
      // Never 200 directly: gogoc dereferences the rspauth it searches for (§5.4)
      this.reply(Buffer.from(`${Buffer.from(`rspauth=${v.rspauth}`, 'latin1').toString('base64')}\r\n`, 'latin1'));
      if (this.opt.transport === 'udp') this.to('responseOkUdp', nowMs);
      else {
        this.to('responseOkTcp', nowMs);
        this.pauseUntilMs = nowMs + TCP_RSPAUTH_PAUSE_MS;
      }
    });
  }

  offerDecision(result: { offer: Offer } | { error: BrokerError }, nowMs: number): Step {
    return this.resume('offer', nowMs, () => {
      if ('error' in result) return this.commandError(result.error, nowMs);
      const xml = writeOffer(result.offer);
      this.reply(framedReply(200, 'Success', xml));
      this.to('offerMade', nowMs);
    });
  }

  acceptDone(error: BrokerError | undefined, nowMs: number): Step {
    return this.resume('accept', nowMs, () => {
      if (error) return this.commandError(error, nowMs);
      // UDP: header-only ack; TCP: nothing, gogoc does not read (§6.7)
      if (this.opt.transport === 'udp') this.reply(EMPTY);
      this.to('accept', nowMs);
    });
  }

  deleteDone(error: BrokerError | undefined, nowMs: number): Step {
    return this.resume('delete', nowMs, () => {
      if (error) return this.commandError(error, nowMs);
      this.reply(framedReply(200, 'Success'));
      this.to('delete', nowMs);
    });
  }

  infoDone(offer: Offer | undefined, nowMs: number): Step {
    return this.resume('info', nowMs, () => {
      if (!offer) return this.commandError(new BrokerError('STORE_NOT_FOUND', 'no tunnel to describe'), nowMs);
      this.reply(framedReply(200, 'Success', writeOffer(offer)));
      this.to('info', nowMs);
    });
  }

  // ---------------------------------------------------------------- internals

  private begin(): void {
    this.out = { send: [], events: [], done: false };
  }

  private finish(nowMs: number): Step {
    const step = this.out;
    if (step.done) {
      this.finished = true;
      this.pending = undefined; // a late answer finds nothing to resume
      this.pauseUntilMs = undefined;
    } else {
      const wake: number[] = [];
      if (this.pauseUntilMs !== undefined) wake.push(this.pauseUntilMs);
      const lingers = this.state === 'closed' || this.state === 'established';
      if (isHalfOpen(this.state) || (lingers && !this.lingerDone)) wake.push(this.deadlineMs);
      if (wake.length) step.wakeAtMs = Math.max(nowMs, Math.min(...wake));
    }
    this.out = { send: [], events: [], done: false };
    return step;
  }

  private resume(expected: Pending, nowMs: number, body: () => void): Step {
    this.begin();
    if (this.finished || this.pending !== expected) return this.finish(nowMs); // late answer after a timeout or close
    this.pending = undefined;
    try {
      body();
      this.tryDrain(nowMs);
    } catch (e) {
      this.failWith(e, nowMs);
    }
    return this.finish(nowMs);
  }

  private tryDrain(nowMs: number): void {
    if (this.opt.transport === 'tcp' && this.state !== 'closed') this.drainTcp(nowMs);
  }

  private to(input: Input, nowMs: number): void {
    this.state = advance(this.state, input);
    // over TCP an accepted session only lingers for the client's last message; then the connection closes
    const tcpLinger = input === 'accept' && this.opt.transport === 'tcp';
    this.deadlineMs = nowMs + (tcpLinger ? TCP_LINGER_MS : this.opt.negotiationTimeoutMs);
  }

  /** One reply to the current request: over UDP with the request's header, cached for retransmissions. */
  private reply(body: Buffer): void {
    if (this.opt.transport === 'tcp') {
      if (body.length) this.out.send.push(body);
      return;
    }
    const h = this.replyHeader;
    if (!h) return; // cannot happen: every UDP reply answers a datagram
    const datagram = Buffer.concat([encodeUdpHeader(h), body]);
    this.cachedReply = datagram;
    this.resends = 0;
    this.sendDatagram(datagram);
  }

  /** Sends a UDP datagram within the anti-amplification budget; a withheld one is retransmitted for by the
   *  client, whose retransmission adds to the budget. */
  private sendDatagram(datagram: Buffer): void {
    const wire = datagram.length + UDP_IPV4_OVERHEAD;
    if (!this.validated && this.wireOut + wire > AMPLIFICATION_FACTOR * this.wireIn) {
      this.out.events.push({ type: 'replyWithheld', reason: 'amplification' });
      return;
    }
    this.wireOut += wire;
    this.out.send.push(datagram);
  }

  private authFail(reason: string): void {
    this.out.events.push({
      type: 'authFailed',
      mechanism: this.mechanism ?? 'unknown',
      username: this.user,
      reason,
      sourceValidated: this.validated,
    });
    this.reply(AUTH_FAILED);
    this.end('error');
  }

  /** Framed error in the command phase (a bare line there is a framing error to gogoc, §7); ends cleanly. */
  private commandError(err: BrokerError, _nowMs: number): void {
    const st = err.tspStatus;
    if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'closed' });
    this.out.events.push({ type: 'protocolError', code: err.code, status: st.code, message: err.message });
    this.reply(framedReply(st.code, st.text));
    this.end('error');
  }

  private end(reason: 'done' | 'error'): void {
    const established = this.state === 'established';
    this.state = 'closed';
    this.pending = undefined;
    this.pauseUntilMs = undefined;
    this.out.events.push({ type: 'closed', reason, established });
    // TCP: write, then close. UDP: linger until the deadline so a retransmission gets the cached reply.
    if (this.opt.transport === 'tcp') this.out.done = true;
  }

  private failWith(e: unknown, nowMs: number): void {
    const err = isBrokerError(e) ? e : new BrokerError('INTERNAL', String((e as Error)?.message ?? e), { cause: e });
    if (this.state === 'closed') return;
    if (readsLines(this.state) || this.state === 'md5Pause') {
      // bare-line phases: authentication failures are 300; anything else in those phases too
      const st = this.state === 'start' ? err.tspStatus : { code: 300, text: 'Authentication failed' };
      this.out.events.push({ type: 'protocolError', code: err.code, status: st.code, message: err.message });
      if (this.state !== 'start' && this.state !== 'md5Poll')
        this.out.events.push({
          type: 'authFailed',
          mechanism: this.mechanism ?? 'none',
          username: this.user,
          reason: err.message,
          sourceValidated: this.validated,
        });
      this.reply(statusLine(st.code, st.text));
      this.end('error');
      return;
    }
    this.commandError(err, nowMs);
  }

  // ---------------------------------------------------------------- UDP

  private receiveDatagram(datagram: Buffer, nowMs: number): void {
    this.wireIn += datagram.length + UDP_IPV4_OVERHEAD;
    if (datagram.length > MAX_CONTROL_DATAGRAM) return; // cannot be a valid request; never answered
    let parsed;
    try {
      parsed = decodeUdpHeader(datagram);
    } catch {
      return; // no reply to malformed datagrams (§11 amplification); the adapter counts them
    }
    const { header, body } = parsed;
    if (this.lastSeq !== undefined && header.seq === this.lastSeq) {
      // retransmission: the cached reply, never re-executed; nothing if the answer is still being decided. A
      // bounded number of times, and within the amplification budget: header-only repeats from a spoofed
      // source must not draw the offer again and again.
      if (this.cachedReply && this.pending === undefined) {
        if (this.resends >= MAX_REPLY_RESENDS) this.out.events.push({ type: 'replyWithheld', reason: 'resends' });
        else {
          this.resends++;
          this.sendDatagram(this.cachedReply);
        }
      }
      return;
    }
    const isVersion = body.subarray(0, 8).toString('latin1').toUpperCase() === 'VERSION=';
    if (isVersion && this.state !== 'start') this.restart(nowMs);
    else if (this.lastSeq !== undefined && compareSeq(header.seq, this.lastSeq) < 0) return; // stale
    if (this.state === 'closed') return; // a new request to a failed session: it must start with VERSION=
    if (this.state === 'start' && !isVersion) return; // not TSP, or a session we never saw: no reply (§11)
    if (this.pending !== undefined) return; // the client waits for the pending reply; it cannot send anew
    this.lastSeq = header.seq;
    this.replyHeader = header;
    this.cachedReply = undefined;
    if (readsLines(this.state)) this.onLine(lineText(body), nowMs);
    else if (body.length === 0 || /^[\s\0]*$/.test(body.toString('latin1'))) {
      this.reply(EMPTY); // a header-only poll outside the DIGEST step: acknowledge, change nothing
    } else this.onFramed(splitFramed(body), nowMs);
  }

  private restart(nowMs: number): void {
    if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'restarted' });
    this.state = 'start';
    this.pending = undefined;
    this.version = undefined;
    this.mechanism = undefined;
    this.user = null;
    this.digest = undefined;
    this.pauseUntilMs = undefined;
    this.deadlineMs = nowMs + this.opt.negotiationTimeoutMs;
  }

  // ---------------------------------------------------------------- TCP

  private drainTcp(nowMs: number): void {
    while (this.pending === undefined && this.pauseUntilMs === undefined && this.state !== 'closed') {
      if (this.skipNul && this.inbuf.length) {
        if (this.inbuf[0] === 0) this.inbuf = this.inbuf.subarray(1);
        this.skipNul = false;
      }
      if (readsLines(this.state)) {
        const lf = this.inbuf.indexOf(0x0a);
        if (lf < 0) {
          if (this.inbuf.length > MAX_LINE_BYTES)
            throw new RemoteProtocolError('TSP_TOO_LARGE', `line longer than ${MAX_LINE_BYTES} bytes`);
          return;
        }
        if (lf > MAX_LINE_BYTES)
          throw new RemoteProtocolError('TSP_TOO_LARGE', `line longer than ${MAX_LINE_BYTES} bytes`);
        let line = this.inbuf.subarray(0, lf);
        this.inbuf = this.inbuf.subarray(lf + 1);
        if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
        // an extra CR LF after SASL lines (other clients, §12): skip blank lines where a payload is expected
        if (line.length === 0 && (this.state === 'md5Resp' || this.state === 'auth')) continue;
        this.onLine(line, nowMs);
        continue;
      }
      // Content-length phase: skip blank lines, read the header line, then exactly N bytes
      const lf = this.inbuf.indexOf(0x0a);
      if (lf < 0) {
        if (this.inbuf.length > MAX_LINE_BYTES) throw new RemoteProtocolError('TSP_TOO_LARGE', 'header line too long');
        return;
      }
      const headerLine = this.inbuf.subarray(0, lf).toString('latin1').replace(/\r$/, '');
      if (/^[\s\0]*$/.test(headerLine)) {
        this.inbuf = this.inbuf.subarray(lf + 1);
        continue;
      }
      const n = parseContentLengthLine(headerLine);
      if (n === undefined) throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected a Content-length header');
      if (this.inbuf.length < lf + 1 + n) return;
      const body = this.inbuf.subarray(lf + 1, lf + 1 + n);
      this.inbuf = this.inbuf.subarray(lf + 1 + n);
      this.onFramed(body, nowMs);
    }
  }

  // ---------------------------------------------------------------- messages

  private onLine(line: Buffer, nowMs: number): void {
    const text = line.toString('latin1');
    switch (this.state) {
      case 'start':
        return this.onVersion(text, nowMs);
      case 'auth':
        return this.onAuthenticate(text, nowMs);
      case 'plainCred': {
        const c = parsePlain(line);
        this.user = c.username;
        this.pending = 'plain';
        this.out.events.push({
          type: 'verifyPlain',
          username: c.username,
          password: c.password,
          sourceValidated: this.validated,
        });
        return;
      }
      case 'md5Resp': {
        const decoded = decodeBase64Strict(text.trim());
        let r: DigestResponse;
        try {
          r = parseResponse(decoded);
        } catch (e) {
          throw new RemoteProtocolError('AUTH_FAILED', `unreadable DIGEST-MD5 response: ${(e as Error).message}`);
        }
        this.user = r.username;
        if (this.digest) this.digest.response = r;
        this.pending = 'digest';
        this.out.events.push({ type: 'lookupDigest', username: r.username });
        return;
      }
      case 'md5Poll':
        if (text.trim() !== '') throw new RemoteProtocolError('TSP_UNEXPECTED', 'expected an empty poll after rspauth');
        this.reply(SUCCESS);
        this.to('digestDone', nowMs);
        return;
      default:
        throw new RemoteProtocolError('TSP_UNEXPECTED', `line message while ${this.state}`);
    }
  }

  private onVersion(text: string, nowMs: number): void {
    const m = /^VERSION=(\S+)\s*$/i.exec(text);
    if (!m) throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected VERSION=');
    const v = m[1]!;
    if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
      this.out.events.push({ type: 'versionRefused', version: v.slice(0, 16) });
      this.reply(statusLine(302, 'Unsupported client version'));
      // 302 needs no state: gogoc's next try comes from a new source port (§2.3)
      this.state = 'closed';
      this.out.events.push({ type: 'closed', reason: 'done', established: false });
      this.out.done = true;
      this.lingerDone = true;
      return;
    }
    this.version = v as TspVersion;
    this.out.events.push({ type: 'version', version: this.version });
    this.reply(this.capabilityLine());
    this.to('version', nowMs);
  }

  private onAuthenticate(text: string, nowMs: number): void {
    const m = /^AUTHENTICATE\s+(\S+)\s*$/i.exec(text);
    if (!m) throw new RemoteProtocolError('AUTH_MECHANISM', 'expected AUTHENTICATE');
    const mech = m[1]!.toUpperCase();
    this.skipNul = true; // gogoc sends the C string terminator (§2.7)
    if (!(this.opt.mechanisms as readonly string[]).includes(mech)) {
      this.mechanism = undefined;
      this.out.events.push({
        type: 'authFailed',
        mechanism: mech.slice(0, 32),
        username: null,
        reason: 'mechanism not offered',
        sourceValidated: this.validated,
      });
      this.reply(AUTH_FAILED);
      this.end('error');
      return;
    }
    this.mechanism = mech as Mechanism;
    if (mech === 'ANONYMOUS') {
      this.out.events.push({ type: 'authenticated', mechanism: 'ANONYMOUS', username: null });
      this.reply(SUCCESS);
      this.to('authAnonymous', nowMs);
    } else if (mech === 'PLAIN') {
      this.reply(EMPTY); // UDP: header-only ack; TCP: nothing (§5.7)
      this.to('authPlain', nowMs);
    } else {
      const nonce = this.opt.newNonce();
      this.digest = { nonce };
      const challenge = buildChallenge(this.opt.realm, nonce);
      this.reply(Buffer.from(`${Buffer.from(challenge, 'latin1').toString('base64')}\r\n`, 'latin1'));
      this.to('authDigest', nowMs);
    }
  }

  private onFramed(body: Buffer, nowMs: number): void {
    let req: TunnelRequest;
    try {
      req = parseTunnelRequest(body.toString('utf8'));
    } catch (e) {
      if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'closed' });
      throw e;
    }
    switch (req.action) {
      case 'create':
        if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'superseded' });
        this.to('create', nowMs);
        this.pending = 'offer';
        this.out.events.push({ type: 'tunnelRequested', request: req });
        return;
      case 'accept':
        if (this.state !== 'offered') throw new RemoteProtocolError('TSP_UNEXPECTED', 'accept without an offer');
        this.pending = 'accept';
        this.out.events.push({ type: 'offerAccepted' });
        return;
      case 'reject':
        if (this.state !== 'offered') throw new RemoteProtocolError('TSP_UNEXPECTED', 'reject without an offer');
        this.out.events.push({ type: 'offerWithdrawn', reason: 'rejected' });
        if (this.opt.transport === 'udp') this.reply(EMPTY);
        this.to('reject', nowMs);
        return;
      case 'delete':
        if (this.state === 'offered')
          throw new RemoteProtocolError('TSP_UNEXPECTED', 'delete while an offer is pending');
        this.pending = 'delete';
        this.out.events.push({ type: 'deleteRequested' });
        return;
      case 'info':
        if (this.state === 'offered') throw new RemoteProtocolError('TSP_UNEXPECTED', 'info while an offer is pending');
        this.pending = 'info';
        this.out.events.push({ type: 'infoRequested' });
        return;
    }
  }
}

/** The CAPABILITY line, built from what is enabled; the final CR LF is required (gogoc drops the last token
 *  without it, docs/protocol.md §4). Depends on the configuration alone. */
export function capabilityLine(opt: Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'>): Buffer {
  const tokens = [
    ...opt.tunnelTypes.map((t) => `TUNNEL=${t.toUpperCase()}`),
    ...opt.mechanisms.map((m) => `AUTH=${m}`),
  ];
  return Buffer.from(`CAPABILITY ${tokens.join(' ')}\r\n`, 'latin1');
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
export function classifyFirstDatagram(
  datagram: Uint8Array,
  opt: Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'>,
): FirstDatagram {
  if (datagram.length > MAX_CONTROL_DATAGRAM) return { kind: 'drop' };
  let parsed;
  try {
    parsed = decodeUdpHeader(datagram);
  } catch {
    return { kind: 'drop' };
  }
  const text = lineText(parsed.body).toString('latin1');
  if (/^AUTHENTICATE\s/i.test(text)) return { kind: 'authenticate' };
  const m = /^VERSION=(\S+)\s*$/i.exec(text);
  if (!m) return { kind: 'drop' };
  const header = encodeUdpHeader(parsed.header);
  const v = m[1]!;
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v))
    return {
      kind: 'version',
      reply: Buffer.concat([header, statusLine(302, 'Unsupported client version')]),
      version: undefined,
    };
  return { kind: 'version', reply: Buffer.concat([header, capabilityLine(opt)]), version: v as TspVersion };
}

/** Strict base64: only the alphabet and padding, and it must round-trip (bad base64 is an auth failure). */
function decodeBase64Strict(text: string): string {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1)
    throw new RemoteProtocolError('AUTH_FAILED', 'DIGEST-MD5 response is not base64');
  return Buffer.from(text, 'base64').toString('utf8');
}
