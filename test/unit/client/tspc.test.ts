/** The tspc lifecycle with its I/O replaced by fakes (client/tspc.ts TspcDeps): retries with backoff, permanent
 *  failures, reconnect after a dead keepalive, redirects, and a clean stop with the hook run on both edges. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerError } from '../../../src/errors.js';
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
  keepalive: { interval: 0.01, address: '2001:db8:f00::1' },
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
  const log = { targets: [] as string[], setups: 0, closes: 0, hooks: [] as string[], states: [] as string[] };
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
        counters: () => ({ txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4, dropped: 0 }),
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
    },
  };
  const tspc = new Tspc(config, silentLog, '/etc/tspc', deps);
  return { tspc, log };
}

const ok = (): Negotiated => ({
  offer: OFFER,
  transport: 'udp',
  version: '2.0.2',
  mechanism: 'ANONYMOUS',
  server: { address: '192.0.2.1', port: 3653 },
  local: { address: '192.0.2.2', port: 40000 },
});

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
};

test('transient failures are retried; once up, stop() tears down, runs the hook down, exits 0', async () => {
  const { tspc, log } = harness(
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
  const { tspc, log } = harness({ keepalive_misses: '2' }, { negotiate: () => ok(), probe: () => answer });
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
  assert.equal(await once.tspc.run(), 21);
  assert.equal(once.log.closes, 1, 'torn down before exiting');
});

test('a redirect tries the listed brokers in order, then the configured server again', async () => {
  const { tspc, log } = harness(
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
