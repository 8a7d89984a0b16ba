/** tspc's socket adapter (client/negotiate.ts) against a real in-process broker on loopback (control plane
 *  only: MemoryDataPlane), over UDP and TCP with every mechanism, and against a scripted server that refuses
 *  2.0.2 and 2.0.1: each version on a new socket (a new source port), as gogoc does. No root needed. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { resolveConfig, type RawConfig } from '../../../src/client/config.js';
import { negotiate } from '../../../src/client/negotiate.js';
import { silentLog } from '../../../src/client/log.js';
import { BrokerError } from '../../../src/errors.js';
import { ManualClock } from '../../../src/clock.js';

let broker: TestBroker;
before(async () => {
  broker = await startTestBroker();
  await broker.addUser('bob', 'hunter2');
});
after(async () => {
  await broker?.stop();
});

function run(raw: RawConfig, port = broker.ports.udp) {
  const { config } = resolveConfig({ server: `127.0.0.1:${port}`, ...raw });
  return negotiate(config, config.server, silentLog);
}

for (const transport of ['udp', 'tcp'] as const) {
  for (const auth of ['anonymous', 'plain', 'digest-md5', 'any'] as const) {
    test(`${transport}, ${auth}: a v6v4 offer accepted`, async () => {
      const creds: RawConfig = auth === 'anonymous' ? {} : { userid: 'bob', passwd: 'hunter2' };
      const n = await run({ transport, auth_method: auth, tunnel_mode: 'v6v4', ...creds });
      assert.equal(n.transport, transport);
      assert.equal(n.offer.type, 'v6v4');
      assert.equal(n.offer.clientIpv4, '127.0.0.1');
      assert.equal(n.mechanism, auth === 'any' ? 'DIGEST-MD5' : auth.toUpperCase());
      assert.equal(n.version, '2.0.2');
    });
  }
}

test('v6udpv4 router mode over UDP: a prefix, and the local port the tunnel must reuse', async () => {
  const n = await run({
    tunnel_mode: 'v6udpv4',
    userid: 'bob',
    passwd: 'hunter2',
    host_type: 'router',
    prefixlen: '56',
  });
  assert.equal(n.offer.type, 'v6udpv4');
  assert.equal(n.offer.prefix?.length, 56);
  assert.ok(n.local.port > 0);
});

test('a wrong password is CLIENT_AUTH_FAILED over both transports', async () => {
  for (const transport of ['udp', 'tcp'])
    await assert.rejects(
      run({ transport, tunnel_mode: 'v6v4', userid: 'bob', passwd: 'wrong', auth_method: 'digest-md5' }),
      (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_AUTH_FAILED',
    );
});

test('302 twice: 2.0.1 then 2.0.0, each from a new source port', async () => {
  const s = dgram.createSocket('udp4');
  const seen: { port: number; body: string }[] = [];
  s.on('message', (m, from) => {
    const body = m.subarray(8).toString('latin1');
    seen.push({ port: from.port, body });
    const reply = body.startsWith('VERSION=2.0.0')
      ? 'CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS\r\n'
      : body.startsWith('VERSION=')
        ? '302 Unsupported client version\r\n'
        : '310 Server side error\r\n';
    s.send(Buffer.concat([m.subarray(0, 8), Buffer.from(reply)]), from.port, from.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  try {
    await assert.rejects(run({ tunnel_mode: 'v6v4' }, s.address().port), (e: unknown) => {
      assert.ok(e instanceof BrokerError && e.code === 'CLIENT_SERVER_ERROR', String(e));
      return true;
    });
    assert.deepEqual(
      seen.slice(0, 3).map((x) => x.body),
      ['VERSION=2.0.2\r\n', 'VERSION=2.0.1\r\n', 'VERSION=2.0.0\r\n'],
    );
    assert.equal(new Set(seen.slice(0, 3).map((x) => x.port)).size, 3, 'three sockets');
    assert.equal(seen[3]!.port, seen[2]!.port, 'the session goes on on the socket that got CAPABILITY');
  } finally {
    s.close();
  }
});

test('nobody listening: v6udpv4 over UDP gives CLIENT_UNREACHABLE after 3 transmissions 2 s apart', async () => {
  const s = dgram.createSocket('udp4');
  const arrivals: number[] = [];
  let arrived: (() => void) | undefined;
  s.on('message', () => {
    arrivals.push(clock.now());
    arrived?.();
  });
  const nextDatagram = (count: number) =>
    new Promise<void>((resolve) => {
      arrived = () => arrivals.length >= count && resolve();
      arrived();
    });
  const clock = new ManualClock(Date.now());
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const t0 = clock.now();
  try {
    const { config } = resolveConfig({ server: `127.0.0.1:${s.address().port}`, tunnel_mode: 'v6udpv4' });
    let failure: unknown;
    const attempt = negotiate(config, config.server, silentLog, undefined, clock).catch((e: unknown) => {
      failure = e;
    });
    for (let n = 1; n <= 3; n++) {
      await nextDatagram(n); // real loopback I/O: the datagram has left before time moves on
      assert.equal(failure, undefined, `still trying after ${n} transmission(s)`);
      clock.advanceTo(clock.nextAt()!);
    }
    await attempt;
    assert.ok(failure instanceof BrokerError && failure.code === 'CLIENT_UNREACHABLE', String(failure));
    assert.deepEqual(
      arrivals.map((t) => t - t0),
      [0, 2_000, 4_000],
    );
    assert.equal(clock.now() - t0, 6_000, 'gave up one timeout after the third');
    assert.equal(clock.pending, 0);
  } finally {
    s.close();
  }
});
