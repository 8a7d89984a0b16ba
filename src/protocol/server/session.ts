/** @module protocol/server/session: one TSP server session (a UDP client ip:port, or a TCP connection),
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
 *  ready yet; the client retransmits again).
 *
 *  States and transitions: server/state.ts, the only writer of `state`. The transport is the framing chosen at
 *  construction (framing/udp.ts: header, reply cache, restart on VERSION=, amplification budget; framing/tcp.ts:
 *  the byte stream, the NUL after AUTHENTICATE); the session asks it for the next message in the form the
 *  state reads, and never branches on the transport itself. */

import { BrokerError, RemoteProtocolError } from '../../errors.js';
import { TCP_RSPAUTH_PAUSE_MS, type TspVersion } from '../constants.js';
import { framedReply } from '../framing/content-length.js';
import { buildChallenge, parseResponse, verifyResponse, type DigestResponse } from '../sasl/digest-md5.js';
import { parsePlain } from '../sasl/plain.js';
import { AUTH_FAILED_LINE, SUCCESS_LINE } from '../status.js';
import { parseTunnelRequest, writeOffer, type Offer, type TunnelRequest } from '../xml.js';
import { EMPTY, SessionCore } from './core.js';
import { guard, isHalfOpen, type State } from './state.js';
import type { Mechanism, OfferResult, Pending, Step } from './types.js';
import { REDIRECT_STATUS, writeBrokerList, type BrokerAddress } from '../redirect.js';
import { capabilityLine, requireVersion } from './version.js';

export type { Mechanism, OfferResult, Pending, ServerSessionOptions, SessionEvent, Step } from './types.js';
export type { State } from './state.js';
export { capabilityLine } from './version.js';

export class ServerSession extends SessionCore {
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
    return this.framing.sourceValidated;
  }

  capabilityLine(): Buffer {
    return capabilityLine(this.opt);
  }

  // ---------------------------------------------------------------- input

  // ---------------------------------------------------------------- answers to requests

  plainResult(ok: boolean, reason: string, nowMs: number): Step {
    return this.resume('plain', nowMs, () => {
      if (!ok) return this.authFail(reason);
      this.out.events.push({ type: 'authenticated', mechanism: 'PLAIN', username: this.user });
      this.reply(SUCCESS_LINE);
      this.to('credentialsOk', nowMs);
    });
  }

  /** `x` is the stored MD5(user:realm:pass), or undefined for an unknown, disabled or throttled user. */
  digestSecret(x: Buffer | undefined, reason: string, nowMs: number): Step {
    return this.resume('digest', nowMs, () => {
      const r = this.digest?.response;
      // a response that carries the nonce we sent proves the peer receives our datagrams
      if (r && this.digest && r.nonce === this.digest.nonce) this.framing.markValidated();
      if (!x || !r || !this.digest) return this.authFail(reason || 'unknown user');
      const quirk = this.opt.quirk200 === true && this.version === '2.0.0';
      const v = verifyResponse(r, x, { realm: this.opt.realm, nonce: this.digest.nonce }, quirk);
      this.digest = undefined; // the nonce is single use
      if (!v.ok) return this.authFail(v.reason);
      this.out.events.push({ type: 'authenticated', mechanism: 'DIGEST-MD5', username: this.user });
      // Never 200 directly: gogoc dereferences the rspauth it searches for (§5.4)
      this.reply(Buffer.from(`${Buffer.from(`rspauth=${v.rspauth}`, 'latin1').toString('base64')}\r\n`, 'latin1'));
      if (this.framing.digestSuccess === 'poll') this.to('responseOkUdp', nowMs);
      else {
        this.to('responseOkTcp', nowMs);
        this.pauseUntilMs = nowMs + TCP_RSPAUTH_PAUSE_MS;
      }
    });
  }

  offerDecision(result: OfferResult, nowMs: number): Step {
    return this.resume('offer', nowMs, () => {
      if ('error' in result) return this.commandError(result.error);
      if ('redirect' in result) return this.redirect(result.redirect);
      this.reply(framedReply(200, 'Success', writeOffer(result.offer)));
      this.to('offerMade', nowMs);
    });
  }

  /** Sends the client to other brokers instead of an offer (status 1200 and their list, Content-length framed
   *  as every reply to a create): the session ends, and nothing was reserved for it. */
  private redirect(brokers: readonly BrokerAddress[]): void {
    const reply = framedReply(REDIRECT_STATUS.code, REDIRECT_STATUS.text, writeBrokerList(brokers));
    this.out.events.push({ type: 'redirected', brokers: brokers.map((b) => b.address) });
    this.reply(reply);
    this.end('done');
  }

  acceptDone(error: BrokerError | undefined, nowMs: number): Step {
    return this.resume('accept', nowMs, () => {
      if (error) return this.commandError(error);
      this.reply(EMPTY); // UDP: header-only ack; TCP: nothing, gogoc does not read (§6.7)
      this.to('accept', nowMs);
    });
  }

  deleteDone(error: BrokerError | undefined, nowMs: number): Step {
    return this.resume('delete', nowMs, () => {
      if (error) return this.commandError(error);
      this.reply(framedReply(200, 'Success'));
      this.to('delete', nowMs);
    });
  }

  infoDone(offer: Offer | undefined, nowMs: number): Step {
    return this.resume('info', nowMs, () => {
      if (!offer) return this.commandError(new BrokerError('STORE_NOT_FOUND', 'no tunnel to describe'));
      this.reply(framedReply(200, 'Success', writeOffer(offer)));
      this.to('info', nowMs);
    });
  }

  // ---------------------------------------------------------------- internals

  // ---------------------------------------------------------------- messages

  protected onLine(line: Buffer, nowMs: number): void {
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
          sourceValidated: this.framing.sourceValidated,
        });
        return;
      }
      case 'md5Resp':
        return this.onDigestResponse(text);
      case 'md5Poll':
        if (text.trim() !== '') throw new RemoteProtocolError('TSP_UNEXPECTED', 'expected an empty poll after rspauth');
        this.reply(SUCCESS_LINE);
        this.to('digestDone', nowMs);
        return;
      default:
        throw new RemoteProtocolError('TSP_UNEXPECTED', `line message while ${this.state}`);
    }
  }

  private onVersion(text: string, nowMs: number): void {
    const answer = requireVersion(text, this.opt);
    if (!answer.supported) {
      this.out.events.push({ type: 'versionRefused', version: answer.version });
      this.reply(answer.reply);
      // 302 needs no state: gogoc's next try comes from a new source port (§2.3)
      this.enter('versionRefused');
      this.out.events.push({ type: 'closed', reason: 'done', established: false });
      this.out.done = true;
      this.lingerDone = true;
      return;
    }
    this.version = answer.version;
    this.out.events.push({ type: 'version', version: answer.version });
    this.reply(answer.reply);
    this.to('version', nowMs);
  }

  private onAuthenticate(text: string, nowMs: number): void {
    const m = /^AUTHENTICATE\s+(\S+)\s*$/i.exec(text);
    if (!m) throw new RemoteProtocolError('AUTH_MECHANISM', 'expected AUTHENTICATE');
    const mech = m[1]!.toUpperCase();
    this.framing.expectNul(); // gogoc sends the C string terminator (§2.7)
    if (!(this.opt.mechanisms as readonly string[]).includes(mech)) {
      this.mechanism = undefined;
      this.out.events.push({
        type: 'authFailed',
        mechanism: mech.slice(0, 32),
        username: null,
        reason: 'mechanism not offered',
        sourceValidated: this.framing.sourceValidated,
      });
      this.reply(AUTH_FAILED_LINE);
      this.end('error');
      return;
    }
    this.mechanism = mech as Mechanism;
    if (mech === 'ANONYMOUS') {
      this.out.events.push({ type: 'authenticated', mechanism: 'ANONYMOUS', username: null });
      this.reply(SUCCESS_LINE);
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

  private onDigestResponse(text: string): void {
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
  }

  protected onFramed(body: Buffer, nowMs: number): void {
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
        guard(this.state, 'accept'); // the transition waits for acceptDone()
        this.pending = 'accept';
        this.out.events.push({ type: 'offerAccepted' });
        return;
      case 'reject':
        guard(this.state, 'reject');
        this.out.events.push({ type: 'offerWithdrawn', reason: 'rejected' });
        this.reply(EMPTY); // UDP: header-only ack; TCP: nothing
        this.to('reject', nowMs);
        return;
      case 'delete':
        guard(this.state, 'delete'); // the transition waits for deleteDone()
        this.pending = 'delete';
        this.out.events.push({ type: 'deleteRequested' });
        return;
      case 'info':
        guard(this.state, 'info'); // the transition waits for infoDone()
        this.pending = 'info';
        this.out.events.push({ type: 'infoRequested' });
        return;
    }
  }
}

/** Strict base64: only the alphabet and padding, and it must round-trip (bad base64 is an auth failure). */
function decodeBase64Strict(text: string): string {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1)
    throw new RemoteProtocolError('AUTH_FAILED', 'DIGEST-MD5 response is not base64');
  return Buffer.from(text, 'base64').toString('utf8');
}
