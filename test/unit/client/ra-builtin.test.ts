/** The builtin announcer's pace (client/ra-builtin.ts) on a ManualClock, with the raw socket replaced by a
 *  recorder (the real socket, on a real veth, is exercised by test/e2e/tspc-ra.test.ts): the initial RAs,
 *  retries while the interface has no link-local address, a flood of solicitations answered by at most one
 *  RA per MIN_DELAY_BETWEEN_RAS_MS, invalid ones ignored, and the final RA with router lifetime 0. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.js';
import { silentLog } from '../../../src/client/log.js';
import {
  BuiltinAnnouncer,
  INITIAL_ADVERTISEMENTS,
  INITIAL_INTERVAL_MS,
  MIN_DELAY_BETWEEN_RAS_MS,
  SEND_RETRY_MS,
  type OnIcmp6,
} from '../../../src/client/ra-builtin.js';
import { MIN_RTR_ADV_INTERVAL_S } from '../../../src/client/ra-packet.js';

const RS = Buffer.from('8500000000000000', 'hex');

function announcer(link: { linkLocal?: string; mac?: string } = { linkLocal: 'fe80::1', mac: '02:00:00:00:00:01' }) {
  const clock = new ManualClock();
  const sent: { at: number; to: string; from: string; lifetime: number }[] = [];
  let deliver: OnIcmp6 = () => {};
  let closed = false;
  const a = new BuiltinAnnouncer(
    { lanInterface: 'lan0', prefix64: '2001:db8:f000::', dnsServers: ['2001:db8::53'], mtu: 1280 },
    silentLog,
    {
      clock,
      open: (_ifname, onMessage) => {
        deliver = onMessage;
        return {
          send: (to, from, data) => {
            if (closed) throw new Error('send after close');
            sent.push({ at: clock.now(), to, from, lifetime: (data[6]! << 8) | data[7]! });
          },
          close: () => (closed = true),
        };
      },
      link: () => link,
      random: () => 0,
    },
  );
  return { a, clock, sent, solicit: (hopLimit = 255) => deliver('fe80::2', hopLimit, RS), isClosed: () => closed };
}

test('an RA at once, the initial ones a few seconds apart, then the periodic pace', () => {
  const { a, clock, sent } = announcer();
  const start = clock.now();
  a.start();
  for (let i = 0; i < 3; i++) clock.advance(INITIAL_INTERVAL_MS);
  clock.advance(MIN_RTR_ADV_INTERVAL_S * 1000);
  assert.deepEqual(
    sent.map((s) => s.at - start),
    [0, INITIAL_INTERVAL_MS, 2 * INITIAL_INTERVAL_MS, 2 * INITIAL_INTERVAL_MS + MIN_RTR_ADV_INTERVAL_S * 1000],
  );
  assert.equal(INITIAL_ADVERTISEMENTS, 3);
  assert.ok(sent.every((s) => s.to === 'ff02::1' && s.from === 'fe80::1' && s.lifetime === 1800));
});

test('without a link-local address nothing is sent, and it is tried again soon', () => {
  const link: { linkLocal?: string } = {};
  const { a, clock, sent } = announcer(link);
  a.start();
  clock.advance(5 * SEND_RETRY_MS);
  assert.equal(sent.length, 0);
  link.linkLocal = 'fe80::1';
  clock.advance(SEND_RETRY_MS);
  assert.equal(sent.length, 1);
});

test('a flood of solicitations gets at most one RA per MIN_DELAY_BETWEEN_RAS_MS; invalid ones none', () => {
  const { a, clock, sent, solicit } = announcer();
  a.start();
  for (let i = 0; i < 3; i++) clock.advance(INITIAL_INTERVAL_MS); // past the initial RAs: next one minutes away
  const before = sent.length;
  const from = clock.now();
  for (let ms = 0; ms < 30_000; ms += 10) {
    solicit();
    solicit(64); // forwarded from elsewhere: never answered
    clock.advance(10);
  }
  const answers = sent.slice(before);
  const most = 1 + 30_000 / MIN_DELAY_BETWEEN_RAS_MS;
  assert.ok(answers.length >= most - 1 && answers.length <= most, `${answers.length} RAs answered 3000 solicitations`);
  for (let i = 1; i < answers.length; i++) assert.ok(answers[i]!.at - answers[i - 1]!.at >= MIN_DELAY_BETWEEN_RAS_MS);
  assert.ok(answers[0]!.at - from <= MIN_DELAY_BETWEEN_RAS_MS);
  const quiet = sent.length;
  for (let i = 0; i < 100; i++) solicit(64);
  clock.advance(10 * MIN_DELAY_BETWEEN_RAS_MS);
  assert.equal(sent.length, quiet, 'solicitations with hop limit 64 are ignored');
});

test('stop sends one final RA with router lifetime 0, closes the socket, and sends nothing after', () => {
  const { a, clock, sent, isClosed } = announcer();
  a.start();
  void a.stop();
  assert.equal(sent.at(-1)!.lifetime, 0);
  assert.equal(isClosed(), true);
  const count = sent.length;
  clock.advance(3_600_000);
  assert.equal(sent.length, count);
});
