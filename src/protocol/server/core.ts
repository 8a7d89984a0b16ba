/** @module protocol/server/core: the step machinery of a server session (server/session.ts): building a Step,
 *  the deadline and the linger, resuming after the broker's answer, reading messages through the framing, and
 *  ending with the status a phase is answered with. `state` changes only in to() and enter(), through the table
 *  (server/state.ts). Pure. */

import { BrokerError, isBrokerError } from '../../errors.js';
import type { TspVersion } from '../constants.js';
import { framedReply } from '../framing/content-length.js';
import { TcpServerFraming } from '../framing/tcp.js';
import type { Inbound, Outbox, ReaderState, ServerFraming } from '../framing/types.js';
import { UdpServerFraming } from '../framing/udp.js';
import type { DigestResponse } from '../sasl/digest-md5.js';
import { AUTH_FAILED_LINE, SUCCESS_LINE, statusLine, tspStatusOf } from '../status.js';
import { advance, isHalfOpen, readsLines, type Input, type State } from './state.js';
import type { Mechanism, Pending, ServerSessionOptions, Step } from './types.js';

export const EMPTY = Buffer.alloc(0);

export abstract class SessionCore {
  protected state: State = 'start';
  protected pending: Pending | undefined;
  protected version: TspVersion | undefined;
  protected mechanism: Mechanism | undefined;
  protected user: string | null = null;
  protected digest: { nonce: string; response?: DigestResponse } | undefined;
  protected deadlineMs: number;
  protected pauseUntilMs: number | undefined;
  protected lingerDone = false;
  /** A Step with done was returned: the adapter forgets the session, and nothing it is fed afterwards (a late
   *  broker answer, a stray timer, bytes) makes it send or ask anything again. */
  protected finished = false;
  protected readonly framing: ServerFraming;
  // the Step being built, and the framing's way into it
  protected out: Step = { send: [], events: [], done: false };
  protected readonly outbox: Outbox = {
    send: (bytes) => this.out.send.push(bytes),
    withheld: (reason) => this.out.events.push({ type: 'replyWithheld', reason }),
  };

  constructor(protected readonly opt: ServerSessionOptions) {
    this.deadlineMs = opt.nowMs + opt.negotiationTimeoutMs;
    this.framing = opt.transport === 'udp' ? new UdpServerFraming() : new TcpServerFraming();
    if (opt.afterVersion !== undefined) {
      this.version = opt.afterVersion;
      this.enter('version');
    }
  }

  /** A bare line in a line-reading state. */
  protected abstract onLine(line: Buffer, nowMs: number): void;
  /** A Content-length message in the command phase. */
  protected abstract onFramed(body: Buffer, nowMs: number): void;

  // ---------------------------------------------------------------- input

  receive(bytes: Uint8Array, nowMs: number): Step {
    this.begin();
    if (this.finished) return this.finish(nowMs);
    try {
      this.framing.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), this.readerState(), this.outbox);
      this.drain(nowMs);
    } catch (e) {
      this.failWith(e);
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
        this.framing.reply(SUCCESS_LINE, this.outbox);
        this.to('digestDone', nowMs);
        // what the client sent during the pause is read now, and may be malformed
        this.drain(nowMs);
      }
    } catch (e) {
      this.failWith(e);
    }
    if (nowMs >= this.deadlineMs) this.expire();
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
    this.enter('close');
    this.out.done = true;
    return this.finish(nowMs);
  }

  protected begin(): void {
    this.out = { send: [], events: [], done: false };
  }

  protected finish(nowMs: number): Step {
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

  protected resume(expected: Pending, nowMs: number, body: () => void): Step {
    this.begin();
    if (this.finished || this.pending !== expected) return this.finish(nowMs); // late answer after a timeout or close
    this.pending = undefined;
    try {
      body();
      this.drain(nowMs);
    } catch (e) {
      this.failWith(e);
    }
    return this.finish(nowMs);
  }

  /** The deadline passed: a lingering session ends; a half-open one expires. */
  protected expire(): void {
    if (this.state === 'closed' && !this.lingerDone) {
      this.lingerDone = true;
      this.out.done = true;
    } else if (this.state === 'established') {
      // UDP: the accept's reply cache has served its purpose; TCP: the linger after the accept is over. The
      // tunnel lives on in the broker either way. A request still being decided (a create after the accept) is
      // dropped with the session: its late answer finds nothing to resume, and the broker rolls it back.
      this.out.done = true;
    } else if (isHalfOpen(this.state)) {
      if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'timeout' });
      this.enter('expire');
      this.out.events.push({ type: 'closed', reason: 'timeout', established: false });
      this.out.done = true;
      this.lingerDone = true;
    }
  }

  /** What the framing needs to know to hand over the next message. */
  protected readerState(): ReaderState {
    const s = this.state;
    return {
      reading: s === 'closed' ? 'nothing' : readsLines(s) ? 'line' : 'framed',
      atStart: s === 'start',
      waiting: this.pending !== undefined || this.pauseUntilMs !== undefined,
      skipBlankLines: s === 'md5Resp' || s === 'auth',
    };
  }

  /** Reads and handles messages while the state can take them. */
  protected drain(nowMs: number): void {
    for (let m = this.framing.next(this.readerState()); m; m = this.framing.next(this.readerState()))
      this.dispatch(m, nowMs);
  }

  protected dispatch(m: Inbound, nowMs: number): void {
    switch (m.kind) {
      case 'restart':
        if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'restarted' });
        this.to('restart', nowMs);
        this.version = undefined;
        this.mechanism = undefined;
        this.user = null;
        this.digest = undefined;
        return;
      case 'poll':
        return this.reply(EMPTY); // a header-only poll outside the DIGEST step: acknowledge, change nothing
      case 'line':
        return this.onLine(m.line, nowMs);
      case 'framed':
        return this.onFramed(m.body, nowMs);
    }
  }

  /** Progress through the table: the negotiation clock starts again (after the accept, the framing's linger). */
  protected to(input: Input, nowMs: number): void {
    this.enter(input);
    if (this.state === 'closed') return;
    const linger = input === 'accept' ? this.framing.acceptLingerMs : undefined;
    this.deadlineMs = nowMs + (linger ?? this.opt.negotiationTimeoutMs);
  }

  /** The one place `state` is written, always through the table. Leaving for `closed` or `start` drops the
   *  question out and any pause; the deadline stays (a UDP session lingers until it, so a retransmission
   *  still gets the cached reply). */
  protected enter(input: Input): void {
    this.state = advance(this.state, input);
    if (this.state === 'closed' || this.state === 'start') {
      this.pending = undefined;
      this.pauseUntilMs = undefined;
    }
  }

  /** One reply to the current request: over UDP with the request's header, cached for retransmissions. */
  protected reply(body: Buffer): void {
    this.framing.reply(body, this.outbox);
  }

  protected authFail(reason: string): void {
    this.out.events.push({
      type: 'authFailed',
      mechanism: this.mechanism ?? 'unknown',
      username: this.user,
      reason,
      sourceValidated: this.framing.sourceValidated,
    });
    this.reply(AUTH_FAILED_LINE);
    this.end('error');
  }

  /** Framed error in the command phase (a bare line there is a framing error to gogoc, §7); ends cleanly. */
  protected commandError(err: BrokerError): void {
    const st = tspStatusOf(err.code);
    if (this.state === 'offered') this.out.events.push({ type: 'offerWithdrawn', reason: 'closed' });
    this.out.events.push({ type: 'protocolError', code: err.code, status: st.code, message: err.message });
    this.reply(framedReply(st.code, st.text));
    this.end('error');
  }

  protected end(reason: 'done' | 'error'): void {
    const established = this.state === 'established';
    this.enter('fail');
    this.out.events.push({ type: 'closed', reason, established });
    // TCP: write, then close. UDP: linger until the deadline so a retransmission gets the cached reply.
    if (this.framing.endsAtOnce) this.out.done = true;
  }

  protected failWith(e: unknown): void {
    const err = isBrokerError(e) ? e : new BrokerError('INTERNAL', String((e as Error)?.message ?? e), { cause: e });
    if (this.state === 'closed') return;
    if (readsLines(this.state) || this.state === 'md5Pause') {
      // bare-line phases: authentication failures are 300; anything else in those phases too
      const st = tspStatusOf(this.state === 'start' ? err.code : 'AUTH_FAILED');
      this.out.events.push({ type: 'protocolError', code: err.code, status: st.code, message: err.message });
      if (this.state !== 'start' && this.state !== 'md5Poll')
        this.out.events.push({
          type: 'authFailed',
          mechanism: this.mechanism ?? 'none',
          username: this.user,
          reason: err.message,
          sourceValidated: this.framing.sourceValidated,
        });
      this.reply(statusLine(st.code, st.text));
      this.end('error');
      return;
    }
    this.commandError(err);
  }
}
