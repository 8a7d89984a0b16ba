/** The tspc command against a scripted TSP server on loopback: the exit statuses and messages a user sees when
 *  the configuration is wrong, the mode is not offered, no mechanism fits, authentication fails, or the TUN
 *  device cannot be created (the last needs root, to drop CAP_NET_ADMIN with setpriv; skipped otherwise). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execCommand } from '../../helpers/netns.js';
import { writeOffer } from '../../../src/protocol/xml.js';
import { framedReply } from '../../../src/protocol/framing/content-length.js';

const TSPC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/tspc.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'tspc-cli-'));
const statusFile = path.join(dir, 'status.json');

/** Answers the n-th datagram of each session with replies[n] behind the request's header. */
async function scriptedServer(replies: (string | Buffer)[]): Promise<{ port: number; close: () => void }> {
  const s = dgram.createSocket('udp4');
  const perPeer = new Map<string, number>();
  s.on('message', (m, from) => {
    const key = `${from.address}:${from.port}`;
    const n = perPeer.get(key) ?? 0;
    perPeer.set(key, n + 1);
    const reply = replies[n];
    if (reply !== undefined) s.send(Buffer.concat([m.subarray(0, 8), Buffer.from(reply)]), from.port, from.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { port: s.address().port, close: () => s.close() };
}

async function tspc(args: string[], prefix: string[] = []) {
  const [command, ...rest] = [...prefix, process.execPath, TSPC, ...args, '--status-file', statusFile, '--no-retry'];
  return execCommand(command!, rest, { timeoutMs: 30_000 });
}

test('a configuration error exits 3 and names the key', async () => {
  const conf = path.join(dir, 'gogoc.conf');
  writeFileSync(conf, 'server=127.0.0.1\nkeepalive_interval=soon\nflavour=mint\n');
  const r = await tspc(['-f', conf]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /keepalive_interval: must be a whole number/);
  assert.match(r.stderr, /flavour: unknown key/);
  assert.equal((await tspc([])).code, 3, 'no server at all');
});

test('tunnel mode not offered: exit 15 with what the server offers', async () => {
  const srv = await scriptedServer(['CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS\r\n']);
  try {
    const r = await tspc(['-s', `127.0.0.1:${srv.port}`, '-m', 'v6udpv4']);
    assert.equal(r.code, 15, r.stderr);
    assert.match(r.stderr, /does not offer v6udpv4 \(it offers v6v4\)/);
  } finally {
    srv.close();
  }
});

test('no mechanism in common: exit 17', async () => {
  const srv = await scriptedServer(['CAPABILITY TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n']);
  try {
    const r = await tspc(['-s', `127.0.0.1:${srv.port}`, '-m', 'v6udpv4', '-a', 'digest-md5', '-u', 'bob']);
    assert.equal(r.code, 17, r.stderr);
    assert.match(r.stderr, /auth_method digest-md5 has nothing in common/);
  } finally {
    srv.close();
  }
});

test('authentication failed: exit 16 with advice', async () => {
  const srv = await scriptedServer(['CAPABILITY TUNNEL=V6UDPV4 AUTH=PLAIN\r\n', '', '300 Authentication failed\r\n']);
  try {
    const r = await tspc(['-s', `127.0.0.1:${srv.port}`, '-m', 'v6udpv4', '-a', 'plain', '-u', 'bob']);
    assert.equal(r.code, 16, r.stderr);
    assert.match(r.stderr, /tspc: the server said: 300 Authentication failed\ntspc: check userid and passwd/);
  } finally {
    srv.close();
  }
});

const canDropCaps = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') && existsSync('/dev/net/tun');
test(
  'no permission for the TUN device: exit 4 saying what to do',
  { skip: !canDropCaps && 'needs root and setpriv' },
  async () => {
    const offer = writeOffer({
      type: 'v6udpv4',
      lifetimeS: 604800,
      serverIpv4: '127.0.0.1',
      serverIpv6: '2001:db8:f00::1',
      clientIpv4: '127.0.0.1',
      clientIpv6: '2001:db8:f00::2',
      keepalive: { interval: 30, address: '2001:db8:f00::1' },
    });
    const srv = await scriptedServer([
      'CAPABILITY TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n',
      '200 Success\r\n',
      framedReply(200, 'Success', offer),
      '',
    ]);
    try {
      const r = await tspc(
        ['-s', `127.0.0.1:${srv.port}`, '-m', 'v6udpv4', '--tun', 'tspct0'],
        ['setpriv', '--bounding-set', '-all', '--inh-caps', '-all'],
      );
      assert.equal(r.code, 4, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /not permitted to create TUN device/);
      assert.match(r.stderr, /run tspc as root, or with CAP_NET_ADMIN/);
    } finally {
      srv.close();
    }
  },
);
