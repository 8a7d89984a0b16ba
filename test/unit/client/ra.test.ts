/** Which announcer router mode starts (client/ra.ts) where the e2e test cannot show it: a host without radvd
 *  asked for radvd (ra=radvd) is a setup error naming the key and the fix, and ra=off starts nothing. The
 *  announcers themselves run for real in test/e2e/tspc-ra.test.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isBrokerError } from '../../../src/errors.js';
import { silentLog } from '../../../src/client/log.js';
import { startLanAnnouncer } from '../../../src/client/ra.js';
import type { Announcement } from '../../../src/client/ra-packet.js';

const LAN: Announcement = { lanInterface: 'lan0', prefix64: '2001:db8:f000::', dnsServers: [], mtu: 1280 };
const nothingInstalled = () => undefined;

test('ra=radvd without radvd installed: CLIENT_SETUP (tspc exits 18) naming the key and the fix', async () => {
  await assert.rejects(
    startLanAnnouncer('radvd', LAN, '/nonexistent', silentLog, nothingInstalled),
    (e: unknown) =>
      isBrokerError(e) &&
      e.code === 'CLIENT_SETUP' &&
      /^ra=radvd: radvd is not installed \(apt-get install radvd, or ra=builtin\)$/.test(e.message),
  );
});

test('ra=off starts no announcer, whatever is installed', async () => {
  assert.equal(await startLanAnnouncer('off', LAN, '/nonexistent', silentLog, () => '/usr/sbin/radvd'), undefined);
});

test(
  'a radvd that does not start: ra=radvd is a setup error, ra=auto falls back to the builtin announcer',
  {
    skip: process.getuid?.() !== 0 && 'needs root (the builtin announcer opens a raw ICMPv6 socket, here on lo)',
  },
  async () => {
    const broken = () => '/bin/false'; // refuses any configuration, as a radvd would that cannot run here
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tspc-ra-'));
    try {
      await assert.rejects(startLanAnnouncer('radvd', LAN, dir, silentLog, broken), /radvd refused/);
      const a = await startLanAnnouncer('auto', { ...LAN, lanInterface: 'lo' }, dir, silentLog, broken);
      assert.equal(a?.kind, 'builtin');
      await a?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
