/** @module transport/session-host: what the transport adapters share, and the one host that runs the ask ->
 *  answer loop for both. An adapter (udp.ts, tcp.ts) owns sockets and says how to write and how to let go of
 *  one; the host feeds the ServerSession, applies each Step (sends, the session's one re-armable timer, the end),
 *  counts half-open sessions for the limits, and hands events to a SessionHandler (the broker). Neither makes a
 *  TSP decision (docs/style.md §3): those are protocol functions (protocol/framing/). */

import { prefix24, sourceKey } from '../address.js';
import type { Clock, Timer } from '../clock.js';
import type { Endpoint } from '../dataplane/types.js';
import type { TspVersion } from '../protocol/constants.js';
import type { ServerSession, SessionEvent, Step } from '../protocol/server/session.js';

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
/** `family`: the client's address family (CAPABILITY lists what can be had over it); 4 when not given. */
export type SessionFactory = (
  transport: 'udp' | 'tcp',
  nowMs: number,
  afterVersion?: TspVersion,
  family?: 4 | 6,
) => ServerSession;

export interface SessionCounts {
  total: number;
  halfOpen: number;
  /** What the adapters did besides running sessions (both transports added up), for metrics. */
  control?: ControlStats & { statelessVersion: number; unsentReplies: number };
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

/** One re-armable timer per session (docs/style.md §3): the host arms it with each step's wakeAtMs and it feeds
 *  the session's timeout() then. Unref'd: a pending negotiation deadline never keeps the process alive. */
export class Wakeup {
  private timer: Timer | undefined;
  private armedAt: number | undefined;
  constructor(
    private readonly clock: Clock,
    private readonly ctx: Pick<SessionContext, 'step'>,
  ) {}
  /** Replaces any armed wakeup; undefined only cancels. The same time again keeps the armed timer: most steps
   *  of a negotiation return its one deadline, and a timer made and cancelled at every step was work for
   *  nothing. */
  at(wakeAtMs: number | undefined): void {
    if (wakeAtMs !== undefined && wakeAtMs === this.armedAt) return;
    this.cancel();
    if (wakeAtMs === undefined) return;
    this.armedAt = wakeAtMs;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = this.armedAt = undefined;
        this.ctx.step((s) => s.timeout(this.clock.now()));
      },
      wakeAtMs - this.clock.now(),
      { unref: true },
    );
  }
  cancel(): void {
    this.timer?.cancel();
    this.timer = this.armedAt = undefined;
  }
}

/** A session as a host keeps it: the context the handler sees, plus the host's bookkeeping. */
export class HostedSession implements SessionContext {
  ended = false;
  /** Position in the host's half-open table while counted there, else -1. */
  halfOpenIndex = -1;
  readonly wake: Wakeup;
  constructor(
    readonly id: string,
    readonly transport: 'udp' | 'tcp',
    readonly peer: Endpoint,
    readonly localAddress: string | undefined,
    readonly session: ServerSession,
    readonly startedMs: number,
    private readonly host: HostedAdapter<HostedSession>,
  ) {
    this.wake = new Wakeup(host.clock, this);
  }
  step(fn: (session: ServerSession) => Step): void {
    guardedStep(this.host, this, fn);
  }
  abort(err: unknown): void {
    crash(this.host, this, err);
  }
}

/** The half-open sessions of one host, counted incrementally (after every step and when a session ends): a
 *  list to draw from at random, by source in age order, and how many per /24. */
export class HalfOpenTable<C extends HostedSession> {
  private readonly list: C[] = [];
  private readonly bySource = new Map<string, Set<C>>();
  private readonly byPrefix = new Map<string, number>();

  get size(): number {
    return this.list.length;
  }

  /** Brings `ctx`'s entry in line with its session; true when it has just become counted. */
  sync(ctx: C): boolean {
    const isHalfOpen = !ctx.ended && ctx.session.isHalfOpen;
    if (isHalfOpen === ctx.halfOpenIndex >= 0) return false;
    const source = sourceKey(ctx.peer.address);
    const prefix = prefix24(ctx.peer.address); // the same key pickVictim reads
    if (isHalfOpen) {
      ctx.halfOpenIndex = this.list.push(ctx) - 1;
      let set = this.bySource.get(source);
      if (!set) this.bySource.set(source, (set = new Set()));
      set.add(ctx);
      this.byPrefix.set(prefix, (this.byPrefix.get(prefix) ?? 0) + 1);
      return true;
    }
    // swap-remove from the list
    const last = this.list.pop()!;
    if (last !== ctx) {
      this.list[ctx.halfOpenIndex] = last;
      last.halfOpenIndex = ctx.halfOpenIndex;
    }
    ctx.halfOpenIndex = -1;
    const set = this.bySource.get(source);
    set?.delete(ctx);
    if (set && set.size === 0) this.bySource.delete(source);
    const n = (this.byPrefix.get(prefix) ?? 1) - 1;
    if (n > 0) this.byPrefix.set(prefix, n);
    else this.byPrefix.delete(prefix);
    return false;
  }

  /** The half-open sessions of one source (address.ts sourceKey: an IPv6 address's whole /64), oldest first. */
  ofSource(address: string): ReadonlySet<C> | undefined {
    return this.bySource.get(sourceKey(address));
  }

  /** A few half-open sessions drawn at random (never `spare`); of those, the one whose /24 holds the most, the
   *  oldest among equals. */
  pickVictim(spare: C, sample: number, random: (n: number) => number): C | undefined {
    let victim: C | undefined;
    let victimLoad = -1;
    // draw among the others only: a draw that could land on `spare` would, with a small table, sometimes find
    // no victim at all (3 entries, 3 draws: 1 in 27) and leave the table over its limit
    const spareAt = spare.halfOpenIndex;
    const n = spareAt >= 0 ? this.list.length - 1 : this.list.length;
    for (let i = 0; i < Math.min(sample, n); i++) {
      const r = random(n);
      const c = this.list[r === spareAt ? this.list.length - 1 : r]!;
      const load = this.byPrefix.get(prefix24(c.peer.address)) ?? 0;
      if (load > victimLoad || (load === victimLoad && c.startedMs < victim!.startedMs)) {
        victim = c;
        victimLoad = load;
      }
    }
    return victim;
  }
}

/** The one host both transports run on: the ask -> answer loop (every way into a session goes through
 *  ctx.step), the timers, the end of a session, and the half-open count the limits read. A subclass says how
 *  to write to a session's peer, what to do when a session is done or dropped, and keeps its own index of
 *  sessions. */
export abstract class SessionHost<C extends HostedSession> implements HostedAdapter<C> {
  readonly stats: ControlStats = { crashes: 0, evictions: 0, busy: 0 };
  protected readonly halfOpen = new HalfOpenTable<C>();
  private nextId = 1;

  constructor(
    readonly handler: SessionHandler,
    readonly clock: Clock,
    private readonly idPrefix: 'udp' | 'tcp',
  ) {}

  /** One datagram or write to the session's peer. */
  protected abstract write(ctx: C, bytes: Buffer): void;
  /** The session returned done: let its transport go gracefully (TCP: end after the writes). */
  protected abstract finishTransport(ctx: C): void;
  /** The session is dropped at once: release its transport resources (TCP: destroy). */
  protected abstract abandonTransport(ctx: C): void;
  /** Remove the session from the subclass's own index. */
  protected abstract forget(ctx: C): void;
  /** How many sessions the host holds. */
  protected abstract get sessionCount(): number;
  /** `ctx` has just become half-open (new, or restarted): make room if a limit is passed. */
  protected onHalfOpen(_ctx: C): void {}

  protected newId(): string {
    return `${this.idPrefix}-${this.nextId++}`;
  }

  counts(): SessionCounts {
    return { total: this.sessionCount, halfOpen: this.halfOpen.size };
  }

  /** Sends, ends, arms, counts, and passes events on, in that order: a step's sends are written before its
   *  events are handled (UDP queues them for the end of the turn, in order: udp.ts). Steps for a forgotten
   *  session send nothing. */
  applyStep(ctx: C, step: Step): void {
    if (!ctx.ended) for (const b of step.send) this.write(ctx, b);
    if (step.done) {
      if (!ctx.ended) this.finishTransport(ctx);
      this.release(ctx);
    }
    ctx.wake.at(ctx.ended ? undefined : step.wakeAtMs);
    this.syncHalfOpen(ctx);
    if (step.events.length) this.handler.onEvents(ctx, step.events);
  }

  drop(ctx: C): void {
    if (!ctx.ended) this.abandonTransport(ctx);
    this.release(ctx);
  }

  /** Forgets the session once: no more sends, no timer, not counted. */
  protected release(ctx: C): void {
    if (ctx.ended) return;
    ctx.ended = true;
    ctx.wake.cancel();
    this.forget(ctx);
    this.syncHalfOpen(ctx);
  }

  private syncHalfOpen(ctx: C): void {
    if (this.halfOpen.sync(ctx)) this.onHalfOpen(ctx);
  }
}
