/** The one session host both transports run on (src/transport/session-host.ts), without sockets: a host whose
 *  "socket" is an array, real ServerSessions, a ManualClock. Sends go out before events are handled; the
 *  half-open count is kept incrementally the same way for both transports; a done step ends the transport
 *  gracefully, a drop abandons it; the negotiation deadline closes a session through its timer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.js';
import { ServerSession, type SessionEvent } from '../../../src/protocol/server/session.js';
import {
  HostedSession,
  SessionHost,
  type SessionContext,
  type SessionHandler,
} from '../../../src/transport/session-host.js';
import { udpDatagram } from '../../helpers/clients.js';

class Recorder implements SessionHandler {
  log: string[] = [];
  onEvents(_ctx: SessionContext, events: readonly SessionEvent[]): void {
    for (const e of events) this.log.push(`event:${e.type}`);
  }
  onCrash(ctx: SessionContext, err: unknown): void {
    this.log.push(`crash:${ctx.id}:${String(err)}`);
  }
}

class ArrayHost extends SessionHost<HostedSession> {
  readonly sessions = new Set<HostedSession>();
  constructor(
    handler: Recorder,
    clock: ManualClock,
    readonly transport: 'udp' | 'tcp',
    private readonly log: string[] = handler.log,
  ) {
    super(handler, clock, transport);
  }
  open(address: string): HostedSession {
    const now = this.clock.now();
    const session = new ServerSession({
      transport: this.transport,
      tunnelTypes: ['v6v4'],
      mechanisms: ['ANONYMOUS'],
      realm: 'r',
      negotiationTimeoutMs: 5000,
      newNonce: () => '00',
      nowMs: now,
    });
    const ctx = new HostedSession(this.newId(), this.transport, { address, port: 1 }, undefined, session, now, this);
    this.sessions.add(ctx);
    ctx.step((s) => s.timeout(now));
    return ctx;
  }
  get halfOpenCount(): number {
    return this.counts().halfOpen;
  }
  protected get sessionCount(): number {
    return this.sessions.size;
  }
  protected write(ctx: HostedSession, bytes: Buffer): void {
    this.log.push(
      `write:${ctx.id}:${bytes
        .subarray(this.transport === 'udp' ? 8 : 0)
        .toString('latin1')
        .trim()}`,
    );
  }
  protected finishTransport(ctx: HostedSession): void {
    this.log.push(`finish:${ctx.id}`);
  }
  protected abandonTransport(ctx: HostedSession): void {
    this.log.push(`abandon:${ctx.id}`);
  }
  protected forget(ctx: HostedSession): void {
    this.sessions.delete(ctx);
  }
}

const version = { udp: udpDatagram(1, 0, 'VERSION=2.0.2\r\n'), tcp: Buffer.from('VERSION=2.0.2\r\n') };
const anonymous = {
  udp: udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'),
  tcp: Buffer.from('AUTHENTICATE ANONYMOUS\r\n\0'),
};

for (const transport of ['udp', 'tcp'] as const) {
  test(`${transport}: sends before events, half-open counted as the state changes, ended once`, () => {
    const h = new Recorder();
    const clock = new ManualClock();
    const host = new ArrayHost(h, clock, transport);
    const a = host.open('192.0.2.1');
    const b = host.open('192.0.2.2');
    assert.deepEqual(host.counts(), { total: 2, halfOpen: 2 });
    a.step((s) => s.receive(version[transport], clock.now()));
    assert.deepEqual(h.log, [`write:${a.id}:CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS`, 'event:version']);
    a.step((s) => s.receive(anonymous[transport], clock.now()));
    assert.equal(host.halfOpenCount, 2, 'authenticated is still half-open');
    h.log.length = 0;
    b.step((s) => s.close(clock.now()));
    assert.deepEqual(h.log, [`finish:${b.id}`, 'event:closed']);
    assert.deepEqual(host.counts(), { total: 1, halfOpen: 1 });
    b.step((s) => s.close(clock.now()));
    assert.deepEqual(host.counts(), { total: 1, halfOpen: 1 }, 'a forgotten session is not counted twice');
    h.log.length = 0;
    host.drop(a);
    assert.deepEqual(h.log, [`abandon:${a.id}`]);
    assert.deepEqual(host.counts(), { total: 0, halfOpen: 0 });
  });

  test(`${transport}: the negotiation deadline closes a silent session through its one timer`, () => {
    const h = new Recorder();
    const clock = new ManualClock();
    const host = new ArrayHost(h, clock, transport);
    const a = host.open('192.0.2.1');
    assert.equal(clock.pending, 1, 'one timer armed');
    clock.advance(5000);
    assert.deepEqual(h.log, [`finish:${a.id}`, 'event:closed']);
    assert.deepEqual(host.counts(), { total: 0, halfOpen: 0 });
    assert.equal(clock.pending, 0);
  });

  test(`${transport}: a throw while handling events closes that session alone and is reported`, () => {
    const clock = new ManualClock();
    const h = new Recorder();
    h.onEvents = (_ctx, events) => {
      if (events.some((e) => e.type === 'version')) throw new TypeError('handler bug');
    };
    const host = new ArrayHost(h, clock, transport);
    const a = host.open('192.0.2.1');
    const b = host.open('192.0.2.2');
    a.step((s) => s.receive(version[transport], clock.now()));
    assert.equal(host.stats.crashes, 1);
    assert.ok(h.log.some((l) => l === `crash:${a.id}:TypeError: handler bug`));
    assert.ok(a.ended && !b.ended);
    assert.deepEqual(host.counts(), { total: 1, halfOpen: 1 });
  });
}
