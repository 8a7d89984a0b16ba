/** @module transport/udp: TSP over UDP through the data plane's socket, so control and v6udpv4 data share
 *  port 3653 and the client's NAT binding (ARCHITECTURE.md). Sessions are keyed by client ip:port; half-open
 *  sessions are bounded globally and per source, and each expires at its session's deadline. */

import type { Clock } from '../clock.js';
import type { ControlDatagram, DataPlane, Endpoint } from '../dataplane/types.js';
import type { ServerSession, Step } from '../protocol/server-session.js';
import { statusLine } from '../protocol/framing.js';
import {
  Wakeup,
  type SessionContext,
  type SessionCounts,
  type SessionFactory,
  type SessionHandler,
} from './session-host.js';

export interface UdpLimits {
  halfOpenSessions: number;
  halfOpenPerSource: number;
}

class UdpContext implements SessionContext {
  readonly transport = 'udp' as const;
  ended = false;
  /** Whether this session is counted in the half-open totals right now. */
  countedHalfOpen = false;
  readonly wake: Wakeup;
  constructor(
    readonly id: string,
    readonly peer: Endpoint,
    readonly localAddress: string | undefined,
    readonly session: ServerSession,
    readonly startedMs: number,
    private readonly owner: UdpControl,
    clock: Clock,
  ) {
    this.wake = new Wakeup(clock, this);
  }
  run(step: Step): void {
    this.owner.applyStep(this, step);
  }
}

export class UdpControl {
  private readonly sessions = new Map<string, UdpContext>();
  private readonly halfOpenBySource = new Map<string, number>();
  private halfOpenTotal = 0;
  private nextId = 1;
  /** Datagrams dropped before reaching a session, by reason (for metrics and tests). */
  readonly dropped = { notTsp: 0, notVersion: 0, busy: 0 };

  constructor(
    private readonly dp: DataPlane,
    private readonly newSession: SessionFactory,
    private readonly handler: SessionHandler,
    private readonly clock: Clock,
    private readonly limits: UdpLimits,
  ) {}

  start(): void {
    this.dp.onControl((batch) => {
      for (const d of batch) this.receive(d);
    });
  }

  counts(): SessionCounts {
    return { total: this.sessions.size, halfOpen: this.halfOpenTotal };
  }

  private receive(d: ControlDatagram): void {
    // the data plane hands over anything that is not IPv6; only the 0xF nibble with a whole header is TSP
    if (d.data.length < 8 || d.data[0]! >> 4 !== 0xf) {
      this.dropped.notTsp++;
      return;
    }
    const key = `${d.from.address}:${d.from.port}`;
    let ctx = this.sessions.get(key);
    const now = this.clock.now();
    if (!ctx) {
      // a session starts only with VERSION=; anything else from an unknown ip:port gets no reply (§11)
      if (d.data.subarray(8, 16).toString('latin1').toUpperCase() !== 'VERSION=') {
        this.dropped.notVersion++;
        return;
      }
      if (!this.admit(d.from.address)) {
        this.dropped.busy++;
        // 530 to VERSION: gogoc waits retry_delay and tries again (tsp-protocol.md §4)
        const reply = Buffer.concat([d.data.subarray(0, 8), statusLine(530, 'Server too busy')]);
        this.dp.sendControl(d.from, reply);
        return;
      }
      ctx = new UdpContext(
        `udp-${this.nextId++}`,
        { ...d.from },
        d.localAddress,
        this.newSession('udp', now),
        now,
        this,
        this.clock,
      );
      this.sessions.set(key, ctx);
    }
    ctx.run(ctx.session.receive(d.data, now));
  }

  private admit(source: string): boolean {
    if (this.halfOpenTotal >= this.limits.halfOpenSessions) return false;
    return (this.halfOpenBySource.get(source) ?? 0) < this.limits.halfOpenPerSource;
  }

  /** Keeps the half-open counts in step with the session's state; called after every step and on forget. */
  private syncHalfOpen(ctx: UdpContext): void {
    const isHalfOpen = !ctx.ended && ctx.session.isHalfOpen;
    if (isHalfOpen === ctx.countedHalfOpen) return;
    ctx.countedHalfOpen = isHalfOpen;
    const delta = isHalfOpen ? 1 : -1;
    this.halfOpenTotal += delta;
    const n = (this.halfOpenBySource.get(ctx.peer.address) ?? 0) + delta;
    if (n > 0) this.halfOpenBySource.set(ctx.peer.address, n);
    else this.halfOpenBySource.delete(ctx.peer.address);
  }

  /** Sends, arms, forgets, and passes events on. Steps for a forgotten session send nothing. */
  applyStep(ctx: UdpContext, step: Step): void {
    if (!ctx.ended) for (const b of step.send) this.dp.sendControl(ctx.peer, b);
    if (step.done) this.forget(ctx);
    ctx.wake.at(ctx.ended ? undefined : step.wakeAtMs);
    this.syncHalfOpen(ctx);
    if (step.events.length) this.handler.onEvents(ctx, step.events);
  }

  private forget(ctx: UdpContext): void {
    if (ctx.ended) return;
    ctx.ended = true;
    const key = `${ctx.peer.address}:${ctx.peer.port}`;
    if (this.sessions.get(key) === ctx) this.sessions.delete(key);
    this.syncHalfOpen(ctx);
  }

  /** Drops every session (broker shutdown); pending offers are withdrawn through the handler. */
  close(): void {
    for (const ctx of [...this.sessions.values()]) ctx.run(ctx.session.close(this.clock.now()));
  }
}
