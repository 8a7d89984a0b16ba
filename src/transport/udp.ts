/** @module transport/udp: TSP over UDP through the data plane's socket, so control and v6udpv4 data share
 *  port 3653 and the client's NAT binding (docs/design.md). Sessions are keyed by client ip:port.
 *
 *  A UDP source address proves nothing, so state is created late and bounded (docs/security.md):
 *  - VERSION from an ip:port without a session is answered from the configuration alone and leaves no state
 *    (protocol classifyFirstDatagram); a session starts with the client's next message, AUTHENTICATE.
 *  - Half-open sessions are bounded globally and per source. A full table makes room instead of refusing
 *    everyone: a source over its share loses its own oldest session; otherwise a few half-open sessions are
 *    drawn at random and the one from the busiest /24, the oldest among equals, is evicted. A spoofer cannot
 *    aim that at a given client, and a legitimate client negotiates in a few round trips while a flood has
 *    to replace the whole table to reach it.
 *  - Replies stay within the session's anti-amplification budget (ServerSession). */

import { randomInt } from 'node:crypto';
import { prefix24 } from '../address.js';
import type { Clock } from '../clock.js';
import type { ControlDatagram, DataPlane, Endpoint } from '../dataplane/types.js';
import type { TspVersion } from '../protocol/constants.js';
import {
  classifyFirstDatagram,
  type ServerSession,
  type ServerSessionOptions,
  type Step,
} from '../protocol/server-session.js';
import {
  Wakeup,
  crash,
  guardedStep,
  type ControlStats,
  type HostedAdapter,
  type SessionContext,
  type SessionCounts,
  type SessionFactory,
  type SessionHandler,
} from './session-host.js';

export interface UdpLimits {
  halfOpenSessions: number;
  halfOpenPerSource: number;
}

/** Half-open sessions looked at when the table is full and one must go. */
const EVICTION_SAMPLE = 8;
/** Versions remembered between a stateless VERSION answer and the AUTHENTICATE that follows, for clients that
 *  did not speak the newest one (only 2.0.0's DIGEST quirk depends on it). Bounded; a flood only pushes
 *  entries out, and a client whose entry was pushed out negotiates as 2.0.2. */
const VERSION_HINTS = 4096;
const NEWEST_VERSION: TspVersion = '2.0.2';

class UdpContext implements SessionContext {
  readonly transport = 'udp' as const;
  ended = false;
  /** Whether this session is counted in the half-open structures right now. */
  countedHalfOpen = false;
  /** Position in UdpControl.halfOpenList while counted. */
  halfOpenIndex = -1;
  readonly wake: Wakeup;
  constructor(
    readonly id: string,
    readonly peer: Endpoint,
    readonly key: string,
    readonly localAddress: string | undefined,
    readonly session: ServerSession,
    readonly startedMs: number,
    private readonly owner: UdpControl,
    clock: Clock,
  ) {
    this.wake = new Wakeup(clock, this);
  }
  step(fn: (session: ServerSession) => Step): void {
    guardedStep(this.owner, this, fn);
  }
  abort(err: unknown): void {
    crash(this.owner, this, err);
  }
}

export class UdpControl implements HostedAdapter<UdpContext> {
  private readonly sessions = new Map<string, UdpContext>();
  /** Half-open sessions: a list to draw from at random, and per source in age order. */
  private readonly halfOpenList: UdpContext[] = [];
  private readonly halfOpenBySource = new Map<string, Set<UdpContext>>();
  private readonly halfOpenByPrefix = new Map<string, number>();
  private readonly versionHints = new Map<string, TspVersion>();
  private nextId = 1;
  /** Datagrams dropped before reaching a session, by reason (for metrics and tests). */
  readonly dropped = { notTsp: 0, notVersion: 0 };
  readonly stats: ControlStats = { crashes: 0, evictions: 0, busy: 0 };
  /** VERSION datagrams answered without a session. */
  statelessReplies = 0;

  constructor(
    private readonly dp: DataPlane,
    private readonly newSession: SessionFactory,
    readonly handler: SessionHandler,
    readonly clock: Clock,
    private readonly limits: UdpLimits,
    private readonly capabilities: Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'>,
  ) {}

  start(): void {
    this.dp.onControl((batch) => {
      for (const d of batch) this.receive(d);
    });
  }

  counts(): SessionCounts {
    return { total: this.sessions.size, halfOpen: this.halfOpenList.length };
  }

  private receive(d: ControlDatagram): void {
    // the data plane hands over anything that is not IPv6; only the 0xF nibble with a whole header is TSP
    if (d.data.length < 8 || d.data[0]! >> 4 !== 0xf) {
      this.dropped.notTsp++;
      return;
    }
    const key = `${d.from.address}:${d.from.port}`;
    const ctx = this.sessions.get(key) ?? this.open(key, d);
    if (ctx) ctx.step((s) => s.receive(d.data, this.clock.now()));
  }

  /** The first datagram from an ip:port: VERSION is answered without state; AUTHENTICATE opens a session. */
  private open(key: string, d: ControlDatagram): UdpContext | undefined {
    const first = classifyFirstDatagram(d.data, this.capabilities);
    if (first.kind === 'drop') {
      this.dropped.notVersion++;
      return undefined;
    }
    if (first.kind === 'version') {
      this.statelessReplies++;
      this.rememberVersion(key, first.version);
      this.dp.sendControl(d.from, first.reply);
      return undefined;
    }
    const now = this.clock.now();
    const afterVersion = this.versionHints.get(key) ?? NEWEST_VERSION;
    this.versionHints.delete(key);
    const ctx = new UdpContext(
      `udp-${this.nextId++}`,
      { ...d.from },
      key,
      d.localAddress,
      this.newSession('udp', now, afterVersion),
      now,
      this,
      this.clock,
    );
    this.sessions.set(key, ctx);
    return ctx;
  }

  private rememberVersion(key: string, version: TspVersion | undefined): void {
    if (version === undefined || version === NEWEST_VERSION) {
      this.versionHints.delete(key);
      return;
    }
    this.versionHints.delete(key);
    this.versionHints.set(key, version);
    if (this.versionHints.size > VERSION_HINTS) this.versionHints.delete(this.versionHints.keys().next().value!);
  }

  /** Evicts what must go now that `ctx` is half-open (new, or restarted by VERSION): the oldest of its source
   *  beyond the source's share, then random victims while the table is over its bound. Never `ctx` itself. */
  private makeRoom(ctx: UdpContext): void {
    const now = this.clock.now();
    const mine = this.halfOpenBySource.get(ctx.peer.address);
    while (mine && mine.size > this.limits.halfOpenPerSource) {
      const oldest = [...mine].find((c) => c !== ctx);
      if (!oldest) break;
      this.evict(oldest, now);
    }
    while (this.halfOpenList.length > this.limits.halfOpenSessions) {
      const victim = this.pickVictim(ctx);
      if (!victim) break;
      this.evict(victim, now);
    }
  }

  /** A few half-open sessions at random (never `spare`); of those, the one whose /24 holds the most, the
   *  oldest among equals. */
  private pickVictim(spare: UdpContext): UdpContext | undefined {
    let victim: UdpContext | undefined;
    let victimLoad = -1;
    const n = this.halfOpenList.length;
    for (let i = 0; i < Math.min(EVICTION_SAMPLE, n); i++) {
      const c = this.halfOpenList[randomInt(n)]!;
      if (c === spare) continue;
      const load = this.halfOpenByPrefix.get(prefix24(c.peer.address)) ?? 0;
      if (load > victimLoad || (load === victimLoad && c.startedMs < victim!.startedMs)) {
        victim = c;
        victimLoad = load;
      }
    }
    return victim;
  }

  private evict(ctx: UdpContext, now: number): void {
    this.stats.evictions++;
    ctx.step((s) => s.close(now));
    if (!ctx.ended) this.drop(ctx); // close() always ends a session; this is only a safety net
  }

  /** Keeps the half-open structures in step with the session's state; called after every step and on drop. */
  private syncHalfOpen(ctx: UdpContext): void {
    const isHalfOpen = !ctx.ended && ctx.session.isHalfOpen;
    if (isHalfOpen === ctx.countedHalfOpen) return;
    ctx.countedHalfOpen = isHalfOpen;
    const source = ctx.peer.address;
    const prefix = prefix24(source);
    if (isHalfOpen) {
      ctx.halfOpenIndex = this.halfOpenList.push(ctx) - 1;
      let set = this.halfOpenBySource.get(source);
      if (!set) this.halfOpenBySource.set(source, (set = new Set()));
      set.add(ctx);
      this.halfOpenByPrefix.set(prefix, (this.halfOpenByPrefix.get(prefix) ?? 0) + 1);
      this.makeRoom(ctx);
      return;
    }
    // swap-remove from the list
    const last = this.halfOpenList.pop()!;
    if (last !== ctx) {
      this.halfOpenList[ctx.halfOpenIndex] = last;
      last.halfOpenIndex = ctx.halfOpenIndex;
    }
    ctx.halfOpenIndex = -1;
    const set = this.halfOpenBySource.get(source);
    set?.delete(ctx);
    if (set && set.size === 0) this.halfOpenBySource.delete(source);
    const n = (this.halfOpenByPrefix.get(prefix) ?? 1) - 1;
    if (n > 0) this.halfOpenByPrefix.set(prefix, n);
    else this.halfOpenByPrefix.delete(prefix);
  }

  /** Sends, arms, forgets, and passes events on. Steps for a forgotten session send nothing. */
  applyStep(ctx: UdpContext, step: Step): void {
    if (!ctx.ended) for (const b of step.send) this.dp.sendControl(ctx.peer, b);
    if (step.done) this.drop(ctx);
    ctx.wake.at(ctx.ended ? undefined : step.wakeAtMs);
    this.syncHalfOpen(ctx);
    if (step.events.length) this.handler.onEvents(ctx, step.events);
  }

  drop(ctx: UdpContext): void {
    if (ctx.ended) return;
    ctx.ended = true;
    ctx.wake.cancel();
    if (this.sessions.get(ctx.key) === ctx) this.sessions.delete(ctx.key);
    this.syncHalfOpen(ctx);
  }

  /** Drops every session (broker shutdown); pending offers are withdrawn through the handler. */
  close(): void {
    for (const ctx of [...this.sessions.values()]) ctx.step((s) => s.close(this.clock.now()));
  }
}
