/** The tspc lifecycle with its I/O replaced by fakes (client/tspc.ts TspcDeps) and its time by a ManualClock:
 *  retries with backoff, permanent failures, reconnect after a dead keepalive, redirects, a clean stop with the
 *  hook run on both edges, the status refresh. Nothing sleeps: each test moves the clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerError } from '../../../src/errors.js';
import { ManualClock } from '../../../src/clock.js';
import { resolveConfig, type RawConfig } from '../../../src/client/config.js';
import { silentLog } from '../../../src/client/log.js';
import { Tspc, type TspcDeps } from '../../../src/client/tspc.js';
import type { Negotiated, NegotiateTarget } from '../../../src/client/negotiate.js';
import type { StatusSnapshot } from '../../../src/client/status.js';

const OFFER: Negotiated['offer'] = {
  type: 'v6udpv4',
  lifetimeS: 604800,
  serverIpv4: '192.0.2.1',
  serverIpv6: '2001:db8:f00::1',
  clientIpv4: '192.0.2.2',
  clientIpv6: '2001:db8:f00::2',
  keepalive: { interval: 10, address: '2001:db8:f00::1' },
};

function harness(
  conf: RawConfig,
  script: { negotiate: (t: NegotiateTarget, n: number) => Negotiated | Error; probe?: () => number | undefined },
) {
  const { config } = resolveConfig({
    server: '192.0.2.1',
    retry_delay: '0',
    retry_delay_max: '0',
    hook: '/hook',
    ...conf,
  });
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  const log = {
    targets: [] as string[],
    setups: 0,
    closes: 0,
    hooks: [] as string[],
    states: [] as string[],
    statusWrites: [] as { state: string; updatedAt: string }[],
  };
  let calls = 0;
  const deps: Partial<TspcDeps> = {
    negotiate: async (_cfg, target) => {
      log.targets.push(target.text);
      const r = script.negotiate(target, ++calls);
      if (r instanceof Error) throw r;
      return r;
    },
    setUpTunnel: async () => {
      log.setups++;
      return {
        tunName: 'tsptun0',
        type: 'v6udpv4',
        counters: () => ({
          txPackets: 1,
          txBytes: 2,
          rxPackets: 3,
          rxBytes: 4,
          dropped: 0,
          sendErrors: 0,
          controlQueueFull: 0,
        }),
        close: async () => {
          log.closes++;
        },
      };
    },
    probe: () => async () => (script.probe ?? (() => 1))(),
    localAddressToward: async () => '192.0.2.2',
    runHook: async (_script, env) => {
      log.hooks.push(env.TSP_OPERATION!);
      return '';
    },
    writeStatus: (_f: string, s: StatusSnapshot) => {
      if (log.states[log.states.length - 1] !== s.state) log.states.push(s.state);
      log.statusWrites.push({ state: s.state, updatedAt: s.updatedAt });
    },
    clock,
  };
  const tspc = new Tspc(config, silentLog, '/etc/tspc', deps);
  /** Moves the clock a second at a time (letting the fakes' promises settle in between) until `cond` holds. */
  const until = async (cond: () => boolean, what: string, limitS = 600) => {
    for (let i = 0; i < limitS && !cond(); i++) await clock.advanceAsync(1_000);
    assert.ok(cond(), what);
  };
  /** Moves the clock until run() resolves, and returns its exit status. */
  const finish = async (run: Promise<number>) => {
    let status: number | undefined;
    void run.then((s) => (status = s));
    await until(() => status !== undefined, 'run() ended');
    return status!;
  };
  return { tspc, log, clock, until, finish };
}

const ok = (): Negotiated => ({
  offer: OFFER,
  transport: 'udp',
  version: '2.0.2',
  mechanism: 'ANONYMOUS',
  server: { address: '192.0.2.1', port: 3653 },
  local: { address: '192.0.2.2', port: 40000 },
});

test('transient failures are retried; once up, stop() tears down, runs the hook down, exits 0', async () => {
  const { tspc, log, until } = harness(
    {},
    {
      negotiate: (_t, n) => (n < 3 ? new BrokerError('CLIENT_UNREACHABLE', 'no reply after 3 transmissions') : ok()),
    },
  );
  const run = tspc.run();
  await until(() => log.hooks.includes('TSP_TUNNEL_CREATION'), 'up');
  tspc.stop();
  assert.equal(await run, 0);
  assert.deepEqual(log.hooks, ['TSP_TUNNEL_CREATION', 'TSP_TUNNEL_TEARDOWN']);
  assert.equal(log.closes, 1);
  assert.deepEqual(log.states, ['connecting', 'up', 'stopped']);
  assert.equal(log.targets.length, 3);
});

test('a permanent failure ends tspc with its exit status, even with auto_retry_connect=yes', async () => {
  const { tspc, log } = harness({}, { negotiate: () => new BrokerError('CLIENT_AUTH_FAILED', 'the server said: 300') });
  assert.equal(await tspc.run(), 16);
  assert.equal(log.targets.length, 1);
  assert.deepEqual(log.states, ['connecting', 'failed']);
});

test('auto_retry_connect=no: the first transient failure ends tspc', async () => {
  const { tspc } = harness(
    { auto_retry_connect: 'no' },
    { negotiate: () => new BrokerError('CLIENT_UNREACHABLE', 'x') },
  );
  assert.equal(await tspc.run(), 9);
});

test('a dead keepalive brings a new session; with auto_retry_connect=no it exits 21', async () => {
  let answer: number | undefined = 1;
  const { tspc, log, until } = harness({ keepalive_misses: '2' }, { negotiate: () => ok(), probe: () => answer });
  const run = tspc.run();
  await until(() => log.setups === 1, 'first up');
  answer = undefined;
  await until(() => log.setups === 2, 'second up after the keepalive died');
  assert.deepEqual(log.hooks.slice(0, 3), ['TSP_TUNNEL_CREATION', 'TSP_TUNNEL_TEARDOWN', 'TSP_TUNNEL_CREATION']);
  tspc.stop();
  assert.equal(await run, 0);

  const once = harness(
    { keepalive_misses: '1', auto_retry_connect: 'no' },
    { negotiate: () => ok(), probe: () => undefined },
  );
  assert.equal(await once.finish(once.tspc.run()), 21);
  assert.equal(once.log.closes, 1, 'torn down before exiting');
});

test('a redirect tries the listed brokers in order, then the configured server again', async () => {
  const { tspc, log, until } = harness(
    {},
    {
      negotiate: (t) => {
        if (t.text === '192.0.2.1')
          return Object.assign(new BrokerError('CLIENT_REDIRECT', 'moved'), {
            brokers: ['198.51.100.9', '198.51.100.10'],
          });
        return t.text === '198.51.100.10' ? ok() : new BrokerError('CLIENT_UNREACHABLE', 'x');
      },
    },
  );
  const run = tspc.run();
  await until(() => log.setups === 1, 'up at the second listed broker');
  tspc.stop();
  assert.equal(await run, 0);
  assert.deepEqual(log.targets, ['192.0.2.1', '198.51.100.9', '198.51.100.10']);
});

test('retries wait the backoff on the clock; while up, the status is refreshed every 2 s', async () => {
  const attempts: number[] = [];
  const { tspc, log, clock, until } = harness(
    { retry_delay: '30', retry_delay_max: '300' },
    {
      negotiate: (_t, n) => {
        attempts.push(clock.now());
        return n <= 4 ? new BrokerError('CLIENT_UNREACHABLE', 'no reply after 3 transmissions') : ok();
      },
    },
  );
  const t0 = clock.now();
  const run = tspc.run();
  await until(() => log.setups === 1, 'up after four failures');
  // gogoc's rule (backoff.ts): retry_delay three times, then doubled
  assert.deepEqual(
    attempts.map((t) => (t - t0) / 1000),
    [0, 30, 60, 90, 150],
  );
  const refreshes = () => log.statusWrites.filter((w) => w.state === 'up').length;
  const before = refreshes();
  await clock.advanceAsync(10_000);
  assert.equal(refreshes() - before, 5);
  assert.equal(log.statusWrites.at(-1)!.updatedAt, new Date(clock.now()).toISOString(), 'stamped by the clock');
  tspc.stop();
  assert.equal(await run, 0);
  assert.equal(clock.pending, 0, 'no timer left behind');
});

test('several servers: a failing one gives way to the next at once; after a dead tunnel the others come first', async () => {
  let aUp = true;
  let answer: number | undefined = 1;
  const at: number[] = [];
  const { tspc, log, clock, until } = harness(
    { server: '198.51.100.1,198.51.100.5', keepalive_misses: '2', retry_delay: '30', retry_delay_max: '30' },
    {
      negotiate: (t) => {
        at.push(clock.now());
        if (t.text === '198.51.100.1') return aUp ? ok() : new BrokerError('CLIENT_UNREACHABLE', 'no reply');
        return ok();
      },
      probe: () => answer,
    },
  );
  const t0 = clock.now();
  const run = tspc.run();
  await until(() => log.setups === 1, 'up on the first server');
  // the first server dies: its keepalives go unanswered, the tunnel is lost
  aUp = false;
  answer = undefined;
  await until(() => log.setups === 2, 'up again');
  answer = 1;
  // it went to the second server first, without trying the dead one or waiting a backoff
  assert.deepEqual(log.targets, ['198.51.100.1', '198.51.100.5']);
  // the second one fails too at its next session: the first is tried at once, then the backoff
  tspc.stop();
  assert.equal(await run, 0);
  assert.ok(at[1]! - t0 < 60_000, 'no backoff before the second server');

  // a first server that does not answer at start: the second at once
  const h = harness(
    { server: '198.51.100.1, 198.51.100.5:3653' },
    { negotiate: (t) => (t.text === '198.51.100.1' ? new BrokerError('CLIENT_UNREACHABLE', 'no reply') : ok()) },
  );
  const r2 = h.tspc.run();
  await h.until(() => h.log.setups === 1, 'up on the second');
  h.tspc.stop();
  assert.equal(await r2, 0);
  assert.deepEqual(h.log.targets, ['198.51.100.1', '198.51.100.5:3653']);
});

test('a server list with a bad entry names it', () => {
  assert.throws(
    () => resolveConfig({ server: '198.51.100.1,not a host' }),
    /server: "not a host" is not host\[:port\]/,
  );
});

test('brokers that keep redirecting to each other: after 5 redirects in a row, a failure and a backoff', async () => {
  const { tspc, log, until, clock } = harness(
    { retry_delay: '30', retry_delay_max: '30' },
    {
      negotiate: (t, n) =>
        n > 12
          ? ok()
          : Object.assign(new BrokerError('CLIENT_REDIRECT', 'moved'), {
              brokers: [t.text === '198.51.100.9' ? '198.51.100.10' : '198.51.100.9'],
            }),
    },
  );
  const t0 = clock.now();
  const run = tspc.run();
  await until(() => log.setups === 1, 'up in the end');
  tspc.stop();
  assert.equal(await run, 0);
  assert.deepEqual(log.targets.slice(0, 7), [
    '192.0.2.1',
    '198.51.100.9',
    '198.51.100.10',
    '198.51.100.9',
    '198.51.100.10',
    '198.51.100.9',
    '192.0.2.1',
  ]);
  assert.ok(clock.now() - t0 >= 30_000, 'a backoff came between the rounds');
});

test('a redirect list that fails counts against the server that sent it: the next configured server is tried', async () => {
  const { tspc, log, until } = harness(
    { server: '198.51.100.1,198.51.100.5' },
    {
      negotiate: (t) =>
        t.text === '198.51.100.1'
          ? Object.assign(new BrokerError('CLIENT_REDIRECT', 'draining'), { brokers: ['203.0.113.77'] })
          : t.text === '198.51.100.5'
            ? ok()
            : new BrokerError('CLIENT_UNREACHABLE', 'no reply'),
    },
  );
  const run = tspc.run();
  await until(() => log.setups === 1, 'up on the second configured server');
  tspc.stop();
  assert.equal(await run, 0);
  assert.deepEqual(log.targets, ['198.51.100.1', '203.0.113.77', '198.51.100.5']);
});
