/** @module transport/tcp: TSP over TCP. One connection is one session; the byte stream goes to the session
 *  as it arrives (framing is the protocol's job, protocol/framing/tcp.ts). Connections in all and per source
 *  (an IPv4 address, an IPv6 /64), and half-open sessions, are bounded; a connection over a bound gets the protocol's busy reply and is
 *  closed. A connection closes when its negotiation ends (after a short linger once the tunnel is accepted:
 *  ServerSession), so connections never pile up. An accepted v6v4 tunnel outlives its connection
 *  (docs/protocol.md §2.5). Socket plumbing only; the ask -> answer loop is the shared host (session-host.ts). */

import net from 'node:net';
import type { Clock } from '../clock.js';
import type { Endpoint } from '../dataplane/types.js';
import { sourceKey } from '../address.js';
import { BrokerError } from '../errors.js';
import { tcpBusyReply } from '../protocol/framing/tcp.js';
import type { ServerSession } from '../protocol/server/session.js';
import { HostedSession, SessionHost, type SessionFactory, type SessionHandler } from './session-host.js';

export interface TcpLimits {
  halfOpenSessions: number;
  tcpPerSource: number;
  tcpConnections: number;
}

class TcpContext extends HostedSession {
  constructor(
    id: string,
    peer: Endpoint,
    localAddress: string | undefined,
    session: ServerSession,
    startedMs: number,
    readonly socket: net.Socket,
    host: TcpControl,
  ) {
    super(id, 'tcp', peer, localAddress, session, startedMs, host);
  }
}

export class TcpControl extends SessionHost<TcpContext> {
  /** The IPv4 listener, and the IPv6 one when there is one (listen.address6); both share the bounds. */
  private readonly servers: net.Server[] = [];
  private readonly contexts = new Set<TcpContext>();
  private readonly perSource = new Map<string, number>();

  constructor(
    private readonly newSession: SessionFactory,
    handler: SessionHandler,
    clock: Clock,
    private readonly limits: TcpLimits,
  ) {
    super(handler, clock, 'tcp');
  }

  /** The port of the first listener. */
  get port(): number {
    const a = this.servers[0]?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Adds a listener (an IPv6 address listens on IPv6 only: IPv4 has its own). */
  async listen(address: string, port: number): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new BrokerError('DP_UNAVAILABLE', `cannot listen on TCP ${address}:${port}: ${err.message}`, { cause: err }),
        ),
      );
      server.listen({ host: address, port, exclusive: true, ipv6Only: address.includes(':') }, () => resolve());
    });
    server.on('error', () => {});
    this.servers.push(server);
  }

  protected get sessionCount(): number {
    return this.contexts.size;
  }

  private accept(socket: net.Socket): void {
    const peer = { address: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''), port: socket.remotePort ?? 0 };
    const source = sourceKey(peer.address);
    const n = this.perSource.get(source) ?? 0;
    if (
      this.contexts.size >= this.limits.tcpConnections ||
      n >= this.limits.tcpPerSource ||
      this.halfOpen.size >= this.limits.halfOpenSessions
    ) {
      this.stats.busy++;
      socket.on('error', () => {});
      socket.end(tcpBusyReply());
      return;
    }
    this.perSource.set(source, n + 1);
    const now = this.clock.now();
    const local = socket.localAddress?.replace(/^::ffff:/, '');
    const ctx = new TcpContext(
      this.newId(),
      peer,
      local,
      this.newSession('tcp', now, undefined, peer.address.includes(':') ? 6 : 4),
      now,
      socket,
      this,
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

  protected write(ctx: TcpContext, bytes: Buffer): void {
    ctx.socket.write(bytes);
  }
  protected finishTransport(ctx: TcpContext): void {
    ctx.socket.end();
  }
  protected abandonTransport(ctx: TcpContext): void {
    ctx.socket.destroy();
  }
  protected forget(ctx: TcpContext): void {
    this.contexts.delete(ctx);
    const source = sourceKey(ctx.peer.address);
    const n = (this.perSource.get(source) ?? 1) - 1;
    if (n > 0) this.perSource.set(source, n);
    else this.perSource.delete(source);
  }

  async close(): Promise<void> {
    for (const ctx of [...this.contexts]) {
      ctx.step((s) => s.close(this.clock.now()));
      ctx.socket.destroy();
    }
    const servers = this.servers.splice(0);
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
