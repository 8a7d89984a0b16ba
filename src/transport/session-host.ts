/** @module transport/session-host: what the transport adapters share. An adapter owns sockets and timers,
 *  feeds a ServerSession, and hands its events to a SessionHandler (the broker). It makes no TSP decisions
 *  (docs/style.md §3). */

import type { Clock, Timer } from '../clock.js';
import type { Endpoint } from '../dataplane/types.js';
import type { TspVersion } from '../protocol/constants.js';
import type { ServerSession, SessionEvent, Step } from '../protocol/server-session.js';

export interface SessionContext {
  /** Unique for the process lifetime, e.g. `udp-7`; used in logs and as the anonymous lease id. */
  readonly id: string;
  readonly transport: 'udp' | 'tcp';
  readonly peer: Endpoint;
  /** The local IPv4 the client reached us on, when known. */
  readonly localAddress: string | undefined;
  readonly session: ServerSession;
  readonly startedMs: number;
  /** Feeds the session (an answer to one of its questions, bytes, a timer) and applies the step it returns:
   *  sends, arms the wakeup, ends the session when done, passes the events to the handler. Whatever throws in
   *  there (the session or the handler) closes this session alone: it is logged and counted (SessionHandler
   *  .onCrash), never thrown to the caller, so no input can take the process down. */
  step(fn: (session: ServerSession) => Step): void;
  /** Closes the session after an error outside it (e.g. the store failed while deciding): logged and counted
   *  like a throw inside step(). */
  abort(err: unknown): void;
  /** True once the adapter has forgotten the session (steps run afterwards send nothing). */
  readonly ended: boolean;
}

export interface SessionHandler {
  /** Called synchronously with each step's events. May start async work that later calls ctx.step(). */
  onEvents(ctx: SessionContext, events: readonly SessionEvent[]): void;
  /** A session's processing threw (or was aborted): the host has closed it. Log it with its peer and count it;
   *  must not throw. */
  onCrash(ctx: SessionContext, err: unknown): void;
}

/** `afterVersion`: a UDP session that begins after a VERSION answered without state (transport/udp.ts). */
export type SessionFactory = (transport: 'udp' | 'tcp', nowMs: number, afterVersion?: TspVersion) => ServerSession;

export interface SessionCounts {
  total: number;
  halfOpen: number;
  /** What the adapters did besides running sessions (both transports added up), for metrics. */
  control?: ControlStats & { statelessVersion: number };
}

/** What a transport adapter did besides running sessions; counters only grow (exported as metrics). */
export interface ControlStats {
  /** Sessions closed because their processing threw. */
  crashes: number;
  /** Half-open sessions evicted to make room for a new one (the table or the source's share was full). */
  evictions: number;
  /** New sessions or connections refused with 530 (TCP connection limits). */
  busy: number;
}

/** The part of a context the guard needs from its adapter. */
export interface HostedAdapter<C extends SessionContext> {
  applyStep(ctx: C, step: Step): void;
  /** Forget the session and release its transport resources at once (no more sends). */
  drop(ctx: C): void;
  readonly stats: ControlStats;
  readonly handler: SessionHandler;
  readonly clock: Clock;
}

/** The guard every way into a session goes through (bytes, timers, broker answers): runs `fn`, applies its
 *  step, and turns a throw anywhere in there into a closed session. */
export function guardedStep<C extends SessionContext>(
  adapter: HostedAdapter<C>,
  ctx: C,
  fn: (session: ServerSession) => Step,
): void {
  let step: Step;
  try {
    step = fn(ctx.session);
  } catch (err) {
    crash(adapter, ctx, err);
    return;
  }
  try {
    adapter.applyStep(ctx, step);
  } catch (err) {
    crash(adapter, ctx, err);
  }
}

/** Closes a session whose processing failed: the session is told (so a reserved offer is given back), the
 *  adapter forgets it, the handler logs and counts it. Nothing here may throw. */
export function crash<C extends SessionContext>(adapter: HostedAdapter<C>, ctx: C, err: unknown): void {
  adapter.stats.crashes++;
  const alreadyEnded = ctx.ended;
  try {
    adapter.drop(ctx);
  } catch {
    // the adapter's own cleanup failed: the session is forgotten below regardless
  }
  if (!alreadyEnded) {
    try {
      const events = ctx.session.close(adapter.clock.now()).events;
      if (events.length) adapter.handler.onEvents(ctx, events);
    } catch {
      // a session that cannot even close is simply forgotten
    }
  }
  try {
    adapter.handler.onCrash(ctx, err);
  } catch {
    // onCrash must not throw; if it does, the process still stays up
  }
}

/** One re-armable timer per session (docs/style.md §3): the adapters arm it with each step's wakeAtMs and it feeds
 *  the session's timeout() then. Unref'd: a pending negotiation deadline never keeps the process alive. */
export class Wakeup {
  private timer: Timer | undefined;
  constructor(
    private readonly clock: Clock,
    private readonly ctx: Pick<SessionContext, 'step'>,
  ) {}
  /** Replaces any armed wakeup; undefined only cancels. */
  at(wakeAtMs: number | undefined): void {
    this.cancel();
    if (wakeAtMs === undefined) return;
    this.timer = this.clock.setTimeout(
      () => this.ctx.step((s) => s.timeout(this.clock.now())),
      wakeAtMs - this.clock.now(),
      { unref: true },
    );
  }
  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
