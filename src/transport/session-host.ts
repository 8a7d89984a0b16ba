/** @module transport/session-host: what the transport adapters share. An adapter owns sockets and timers,
 *  feeds a ServerSession, and hands its events to a SessionHandler (the broker). It makes no TSP decisions
 *  (STYLE.md §3). */

import type { Clock } from '../clock.js';
import type { Endpoint } from '../dataplane/types.js';
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
  /** Applies a step the session returned: sends, arms the wakeup, ends the session when done, and passes the
   *  events to the handler. The broker calls it with the steps its answers produce. */
  run(step: Step): void;
  /** True once the adapter has forgotten the session (steps run afterwards send nothing). */
  readonly ended: boolean;
}

export interface SessionHandler {
  /** Called synchronously with each step's events. May start async work that later calls ctx.run(). */
  onEvents(ctx: SessionContext, events: readonly SessionEvent[]): void;
}

export type SessionFactory = (transport: 'udp' | 'tcp', nowMs: number) => ServerSession;

export interface SessionCounts {
  total: number;
  halfOpen: number;
}

/** One re-armable timer per session (STYLE.md §3): the adapters arm it with each step's wakeAtMs and it feeds
 *  the session's timeout() then. Unref'd: a pending negotiation deadline never keeps the process alive. */
export class Wakeup {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly clock: Clock,
    private readonly ctx: Pick<SessionContext, 'run' | 'session'>,
  ) {}
  /** Replaces any armed wakeup; undefined only cancels. */
  at(wakeAtMs: number | undefined): void {
    this.cancel();
    if (wakeAtMs === undefined) return;
    this.timer = setTimeout(
      () => this.ctx.run(this.ctx.session.timeout(this.clock.now())),
      Math.max(0, wakeAtMs - this.clock.now()),
    );
    this.timer.unref();
  }
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
