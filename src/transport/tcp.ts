/** @module transport/tcp: TSP over TCP. One connection is one session; the byte stream goes to the session
 *  as it arrives (framing is the session's job). Connections in all and per source IPv4, and half-open
 *  sessions, are bounded; a connection over a bound gets `530 Server too busy` and is closed. A connection
 *  closes when its negotiation ends (after a short linger once the tunnel is accepted: ServerSession), so
 *  connections never pile up. An accepted v6v4 tunnel outlives its connection (docs/protocol.md §2.5). */

import net from 'node:net';
import type { Clock } from '../clock.js';
import type { Endpoint } from '../dataplane/types.js';
import type { ServerSession, Step } from '../protocol/server-session.js';
import { statusLine } from '../protocol/framing.js';
import { BrokerError } from '../errors.js';
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

export interface TcpLimits {
  halfOpenSessions: number;
  tcpPerSource: number;
  tcpConnections: number;
}

class TcpContext implements SessionContext {
  readonly transport = 'tcp' as const;
  ended = false;
  readonly wake: Wakeup;
  constructor(
    readonly id: string,
    readonly peer: Endpoint,
    readonly localAddress: string | undefined,
    readonly session: ServerSession,
    readonly startedMs: number,
    readonly socket: net.Socket,
    private readonly owner: TcpControl,
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

export class TcpControl implements HostedAdapter<TcpContext> {
  private server: net.Server | undefined;
  private readonly contexts = new Set<TcpContext>();
  private readonly perSource = new Map<string, number>();
  private nextId = 1;
  readonly stats: ControlStats = { crashes: 0, evictions: 0, busy: 0 };

  constructor(
    private readonly newSession: SessionFactory,
    readonly handler: SessionHandler,
    readonly clock: Clock,
    private readonly limits: TcpLimits,
  ) {}

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async listen(address: string, port: number): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new BrokerError('DP_UNAVAILABLE', `cannot listen on TCP ${address}:${port}: ${err.message}`, { cause: err }),
        ),
      );
      server.listen({ host: address, port, exclusive: true }, () => resolve());
    });
    server.on('error', () => {});
    this.server = server;
  }

  counts(): SessionCounts {
    let halfOpen = 0;
    for (const c of this.contexts) if (c.session.isHalfOpen) halfOpen++;
    return { total: this.contexts.size, halfOpen };
  }

  private accept(socket: net.Socket): void {
    const peer = { address: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''), port: socket.remotePort ?? 0 };
    const n = this.perSource.get(peer.address) ?? 0;
    if (
      this.contexts.size >= this.limits.tcpConnections ||
      n >= this.limits.tcpPerSource ||
      this.counts().halfOpen >= this.limits.halfOpenSessions
    ) {
      this.stats.busy++;
      socket.on('error', () => {});
      socket.end(statusLine(530, 'Server too busy'));
      return;
    }
    this.perSource.set(peer.address, n + 1);
    const now = this.clock.now();
    const local = socket.localAddress?.replace(/^::ffff:/, '');
    const ctx = new TcpContext(
      `tcp-${this.nextId++}`,
      peer,
      local,
      this.newSession('tcp', now),
      now,
      socket,
      this,
      this.clock,
    );
    this.contexts.add(ctx);
    socket.on('data', (chunk: Buffer) => {
      if (!ctx.ended) ctx.step((s) => s.receive(chunk, this.clock.now()));
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => {
      if (!ctx.ended) ctx.step((s) => s.close(this.clock.now()));
      this.release(ctx);
    });
    // arm the negotiation deadline now: a client that connects and never sends must still be closed
    ctx.step((s) => s.timeout(now));
  }

  applyStep(ctx: TcpContext, step: Step): void {
    if (!ctx.ended) for (const b of step.send) ctx.socket.write(b);
    if (step.done) {
      if (!ctx.ended) ctx.socket.end();
      this.release(ctx);
    }
    ctx.wake.at(ctx.ended ? undefined : step.wakeAtMs);
    if (step.events.length) this.handler.onEvents(ctx, step.events);
  }

  drop(ctx: TcpContext): void {
    if (!ctx.ended) ctx.socket.destroy();
    this.release(ctx);
  }

  private release(ctx: TcpContext): void {
    if (ctx.ended) return;
    ctx.ended = true;
    ctx.wake.cancel();
    this.contexts.delete(ctx);
    const n = (this.perSource.get(ctx.peer.address) ?? 1) - 1;
    if (n > 0) this.perSource.set(ctx.peer.address, n);
    else this.perSource.delete(ctx.peer.address);
  }

  async close(): Promise<void> {
    for (const ctx of [...this.contexts]) {
      ctx.step((s) => s.close(this.clock.now()));
      ctx.socket.destroy();
    }
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
