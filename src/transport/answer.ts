/** @module transport/answer: the ask -> answer loop between a session and the service that decides for it.
 *
 *  A session asks by event (verifyPlain, lookupDigest, tunnelRequested, offerAccepted, …); this loop calls the
 *  service, waits for the value it returns, and feeds that value back into the session through the host's
 *  guard (`ctx.step`). The service never sees a session, a socket or a step: it answers questions and returns
 *  values (broker/service.ts). Control flows one way: socket -> host -> session -> host -> service -> host ->
 *  session -> socket.
 *
 *  Per session the service keeps what it learnt (who authenticated, what was offered) in an Answerer it hands
 *  out when the session first speaks; the loop holds it for the session's lifetime. */

import type { Clock } from '../clock.js';
import type { BrokerError } from '../errors.js';
import type { Endpoint } from '../dataplane/types.js';
import type { OfferResult, SessionEvent } from '../protocol/server/session.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { SessionContext, SessionHandler } from './session-host.js';

/** What the service may know of a session: where it comes from, never the session itself. */
export interface SessionPeer {
  readonly id: string;
  readonly transport: 'udp' | 'tcp';
  readonly peer: Endpoint;
  readonly localAddress: string | undefined;
  readonly startedMs: number;
}

export type OfferAnswer = OfferResult;

/** One session's questions, answered by the service. Every method may throw (or reject): the session is then
 *  closed and counted as a crash, never left waiting. */
export interface Answerer {
  verifyPlain(username: string, password: string, sourceValidated: boolean): Promise<{ ok: boolean; reason: string }>;
  lookupDigest(username: string): Promise<{ secret: Buffer | undefined; reason: string }>;
  requestTunnel(request: TunnelRequest): Promise<OfferAnswer>;
  /** The session stopped waiting for the offer it asked for (timeout, close, restart): give back what was
   *  reserved for it. */
  offerUnwanted(): Promise<void>;
  accept(): Promise<BrokerError | undefined>;
  withdraw(reason: string): Promise<void>;
  deleteTunnels(): Promise<BrokerError | undefined>;
  info(): Promise<Offer | undefined>;
  /** Everything the session reports without asking (authenticated, authFailed, protocolError, closed, …). */
  note(event: SessionEvent): void;
}

export interface SessionService {
  open(peer: SessionPeer): Answerer;
  /** A session's processing threw, or its service work failed: the host has closed it. Must not throw. */
  crashed(peer: SessionPeer, err: unknown): void;
  /** Work the loop could not attribute to a live session failed (e.g. a withdraw after the session ended). */
  failed(peer: SessionPeer, err: unknown): void;
}

/** The SessionHandler the transports feed: runs the ask -> answer loop against a service. */
export class AnsweringHandler implements SessionHandler {
  private readonly answerers = new WeakMap<SessionContext, Answerer>();
  /** Service work in flight, so drain() can wait for it (shutdown). */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    private readonly service: SessionService,
    private readonly clock: Clock,
  ) {}

  onEvents(ctx: SessionContext, events: readonly SessionEvent[]): void {
    let a = this.answerers.get(ctx);
    if (!a) this.answerers.set(ctx, (a = this.service.open(ctx)));
    for (const e of events) this.onEvent(ctx, a, e);
  }

  onCrash(ctx: SessionContext, err: unknown): void {
    this.service.crashed(ctx, err);
  }

  /** Resolves when every answer in flight has been fed back (or failed). */
  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private onEvent(ctx: SessionContext, a: Answerer, e: SessionEvent): void {
    const now = () => this.clock.now();
    switch (e.type) {
      case 'verifyPlain':
        return this.ask(ctx, a.verifyPlain(e.username, e.password, e.sourceValidated), (r, s) =>
          s.plainResult(r.ok, r.reason, now()),
        );
      case 'lookupDigest':
        return this.ask(ctx, a.lookupDigest(e.username), (r, s) => s.digestSecret(r.secret, r.reason, now()));
      case 'tunnelRequested':
        return this.ask(
          ctx,
          a.requestTunnel(e.request),
          (r, s) => s.offerDecision(r, now()),
          // the session timed out, closed or restarted while the service allocated: give it all back
          (s) => s.awaiting === 'offer',
          () => a.offerUnwanted(),
        );
      case 'offerAccepted':
        return this.ask(ctx, a.accept(), (err, s) => s.acceptDone(err, now()));
      case 'deleteRequested':
        return this.ask(ctx, a.deleteTunnels(), (err, s) => s.deleteDone(err, now()));
      case 'infoRequested':
        return this.ask(ctx, a.info(), (offer, s) => s.infoDone(offer, now()));
      case 'offerWithdrawn':
        this.track(ctx, a.withdraw(e.reason), false);
        a.note(e);
        return;
      default:
        a.note(e);
    }
  }

  /** Asks the service, then feeds the answer back through the host's guard. `wanted`: whether the session
   *  still waits for this answer (else `unwanted` runs instead of feeding it). */
  private ask<T>(
    ctx: SessionContext,
    answer: Promise<T>,
    feed: (value: T, s: SessionContext['session']) => ReturnType<SessionContext['session']['timeout']>,
    wanted?: (s: SessionContext['session']) => boolean,
    unwanted?: () => Promise<void>,
  ): void {
    this.track(
      ctx,
      answer.then(async (value) => {
        if (wanted && !wanted(ctx.session)) {
          await unwanted?.();
          return;
        }
        ctx.step((s) => feed(value, s));
      }),
      true,
    );
  }

  /** Keeps service work in view; a failure closes the session it belongs to (counted as a crash) instead of
   *  leaving it waiting. `owned`: the session waits for this work. */
  private track(ctx: SessionContext, p: Promise<unknown>, owned: boolean): void {
    const q = p.catch((err: unknown) => {
      if (owned && !ctx.ended) ctx.abort(err);
      else this.service.failed(ctx, err);
    });
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }
}
