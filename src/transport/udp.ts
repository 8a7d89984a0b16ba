/** @module transport/udp: TSP over UDP through the data plane's socket, so control and v6udpv4 data share
 *  port 3653 and the client's NAT binding (docs/design.md). Sessions are keyed by client ip:port. Socket
 *  plumbing only: which datagrams are control, and how a first datagram is answered, are protocol functions
 *  (protocol/framing/udp.ts); the ask -> answer loop is the shared host (session-host.ts).
 *
 *  A UDP source address proves nothing, so state is created late and bounded (docs/security.md):
 *  - VERSION from an ip:port without a session is answered from the configuration alone and leaves no state
 *    (classifyFirstDatagram); a session starts with the client's next message, AUTHENTICATE.
 *  - Half-open sessions are bounded globally and per source. A full table makes room instead of refusing
 *    everyone: a source over its share loses its own oldest session; otherwise a few half-open sessions are
 *    drawn at random and the one from the busiest /24, the oldest among equals, is evicted. A spoofer cannot
 *    aim that at a given client, and a legitimate client negotiates in a few round trips while a flood has
 *    to replace the whole table to reach it.
 *  - Replies stay within the session's anti-amplification budget (protocol/framing/udp.ts).
 *
 *  Replies leave together at the end of the event-loop turn that made them (`reply`, setImmediate), in the order
 *  they were made: a turn that read 30 datagrams sends its 30 replies back to back. Sent one by one as each
 *  datagram was handled, each reply found its (idle) peer asleep and paid the kernel's wakeup of it; sent
 *  together, the later ones find the peer awake (docs/architecture.md, Measurements). The turn's first reply
 *  sets the flush: a group commit that a datagram before it started (an accept; a setImmediate too) runs
 *  first, and its sync then runs on the thread pool while the replies go. Setting the flush as each batch
 *  arrives, so that replies never wait for a group's statements, cost the accept that overlap: no less CPU
 *  and a p99 no better (bench:ab, 18 slices). A reply made after the flush ran (an answer back from the
 *  store) goes at the end of the next turn. After close() nothing is answered. */

import { randomInt } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ControlDatagram, Endpoint } from '../dataplane/types.js';
import type { ControlChannel } from './udp6.js';
import type { TspVersion } from '../protocol/constants.js';
import { classifyFirstDatagram, isControlDatagram } from '../protocol/framing/udp.js';
import type { Capabilities } from '../protocol/server/version.js';
import type { ServerSession } from '../protocol/server/session.js';
import { HostedSession, SessionHost, type SessionFactory, type SessionHandler } from './session-host.js';

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

class UdpContext extends HostedSession {
  constructor(
    id: string,
    peer: Endpoint,
    readonly key: string,
    localAddress: string | undefined,
    session: ServerSession,
    startedMs: number,
    host: UdpControl,
  ) {
    super(id, 'udp', peer, localAddress, session, startedMs, host);
  }
}

export class UdpControl extends SessionHost<UdpContext> {
  private readonly sessions = new Map<string, UdpContext>();
  private readonly versionHints = new Map<string, TspVersion>();
  /** Datagrams dropped before reaching a session, by reason (for metrics and tests). */
  readonly dropped = { notTsp: 0, notVersion: 0 };
  /** VERSION datagrams answered without a session. */
  statelessReplies = 0;
  /** Replies not sent: the channel refused them when their turn ended (the native data plane throws once it
   *  is closed: the broker stopping), or they were made after close(). */
  unsent = 0;
  /** Replies made in this event-loop turn, not sent yet (module comment); the first one sets the flush. */
  private outbox: [Endpoint, Uint8Array][] = [];
  private closed = false;

  constructor(
    private readonly dp: ControlChannel,
    private readonly newSession: SessionFactory,
    handler: SessionHandler,
    clock: Clock,
    private readonly limits: UdpLimits,
    private readonly capabilities: Capabilities,
    /** CAPABILITY to clients over IPv6, when it differs (Broker.capabilitiesFor). */
    private readonly capabilities6: Capabilities = capabilities,
  ) {
    super(handler, clock, 'udp');
  }

  start(): void {
    this.dp.onControl((batch) => {
      if (this.closed) return;
      for (const d of batch) this.receive(d);
    });
  }

  protected get sessionCount(): number {
    return this.sessions.size;
  }

  private receive(d: ControlDatagram): void {
    // the data plane hands over anything that is not IPv6
    if (!isControlDatagram(d.data)) {
      this.dropped.notTsp++;
      return;
    }
    const key = `${d.from.address}:${d.from.port}`;
    const ctx = this.sessions.get(key) ?? this.open(key, d);
    if (ctx) ctx.step((s) => s.receive(d.data, this.clock.now()));
  }

  /** The first datagram from an ip:port: VERSION is answered without state; AUTHENTICATE opens a session. */
  private open(key: string, d: ControlDatagram): UdpContext | undefined {
    const ipv6 = d.from.address.includes(':');
    const first = classifyFirstDatagram(d.data, ipv6 ? this.capabilities6 : this.capabilities);
    if (first.kind === 'drop') {
      this.dropped.notVersion++;
      return undefined;
    }
    if (first.kind === 'version') {
      this.statelessReplies++;
      this.rememberVersion(key, first.version);
      this.reply(d.from, first.reply);
      return undefined;
    }
    const now = this.clock.now();
    const afterVersion = this.versionHints.get(key) ?? NEWEST_VERSION;
    this.versionHints.delete(key);
    const session = this.newSession('udp', now, afterVersion, ipv6 ? 6 : 4);
    const ctx = new UdpContext(this.newId(), { ...d.from }, key, d.localAddress, session, now, this);
    this.sessions.set(key, ctx);
    return ctx;
  }

  private rememberVersion(key: string, version: TspVersion | undefined): void {
    this.versionHints.delete(key);
    if (version === undefined || version === NEWEST_VERSION) return;
    this.versionHints.set(key, version);
    if (this.versionHints.size > VERSION_HINTS) this.versionHints.delete(this.versionHints.keys().next().value!);
  }

  /** Evicts what must go now that `ctx` is half-open (new, or restarted by VERSION): the oldest of its source
   *  beyond the source's share, then random victims while the table is over its bound. Never `ctx` itself. */
  protected override onHalfOpen(ctx: UdpContext): void {
    const now = this.clock.now();
    const mine = this.halfOpen.ofSource(ctx.peer.address);
    while (mine && mine.size > this.limits.halfOpenPerSource) {
      const oldest = [...mine].find((c) => c !== ctx);
      if (!oldest) break;
      this.evict(oldest, now);
    }
    while (this.halfOpen.size > this.limits.halfOpenSessions) {
      const victim = this.halfOpen.pickVictim(ctx, EVICTION_SAMPLE, randomInt);
      if (!victim) break;
      this.evict(victim, now);
    }
  }

  private evict(ctx: UdpContext, now: number): void {
    this.stats.evictions++;
    ctx.step((s) => s.close(now));
    if (!ctx.ended) this.drop(ctx); // close() always ends a session; this is only a safety net
  }

  protected write(ctx: UdpContext, bytes: Buffer): void {
    this.reply(ctx.peer, bytes);
  }

  /** Queues a reply for the end of this event-loop turn (module comment). */
  private reply(to: Endpoint, bytes: Uint8Array): void {
    if (this.closed) {
      this.unsent++;
      return;
    }
    if (this.outbox.push([to, bytes]) === 1) setImmediate(this.flush);
  }

  /** Sends the turn's replies in order. One the channel refuses is counted and the rest still go. */
  private readonly flush = (): void => {
    const out = this.outbox;
    this.outbox = [];
    for (const [to, bytes] of out) {
      try {
        this.dp.sendControl(to, bytes);
      } catch {
        this.unsent++;
      }
    }
  };

  protected finishTransport(): void {} // nothing to close: the socket is the data plane's
  protected abandonTransport(): void {}
  protected forget(ctx: UdpContext): void {
    if (this.sessions.get(ctx.key) === ctx) this.sessions.delete(ctx.key);
  }

  /** Drops every session (broker shutdown); pending offers are withdrawn through the handler. */
  close(): void {
    for (const ctx of [...this.sessions.values()]) ctx.step((s) => s.close(this.clock.now()));
    this.flush(); // what the turn made goes before the data plane closes
    this.closed = true; // and nothing more: datagrams read until the data plane closes are not answered
  }
}
