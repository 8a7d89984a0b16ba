/** A redirect (TSP 1200, docs/protocol.md §10) from the server session, in the bytes a client reads: the reply
 *  to a create, Content-length framed, with the broker list gogoc parses; the client side (tspc's reader) gets
 *  the same list back. Bad addresses never reach the wire. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerSession } from '../../../src/protocol/server/session.js';
import { writeBrokerList } from '../../../src/protocol/redirect.js';
import { redirectList } from '../../../src/protocol/client/replies.js';

const CREATE =
  'Content-length: 211\r\n<tunnel action="create" type="v6v4" proxy="no">\r\n <client>\r\n  <address type="ipv4">192.0.2.2</address>\r\n  <keepalive interval="30">\r\n    <address type="ipv6">::</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n';

function session(): ServerSession {
  return new ServerSession({
    transport: 'tcp',
    tunnelTypes: ['v6v4', 'v6udpv4'],
    mechanisms: ['ANONYMOUS'],
    realm: 'tsp-fake',
    negotiationTimeoutMs: 30_000,
    newNonce: () => '762f53ae1752548c',
    nowMs: 0,
  });
}

test('a create answered with a redirect: 1200 and the broker list, framed, and the session ends', () => {
  const s = session();
  s.receive(Buffer.from('VERSION=2.0.2\r\n'), 1);
  s.receive(Buffer.from('AUTHENTICATE ANONYMOUS\r\n\0'), 1);
  const asked = s.receive(Buffer.from(CREATE), 1);
  assert.ok(asked.events.some((e) => e.type === 'tunnelRequested'));
  const step = s.offerDecision({ redirect: [{ type: 'ipv4', address: '198.51.100.12' }] }, 2);
  const wire = Buffer.concat(step.send).toString('latin1');
  // the exact bytes docs/protocol.md §10 shows
  assert.equal(
    wire,
    'Content-length: 109\r\n1200 Redirect\r\n<tunnel action="info"><broker><address type="ipv4">198.51.100.12</address></broker></tunnel>\r\n',
  );
  assert.ok(step.done, 'TCP: the connection closes after it');
  assert.deepEqual(
    step.events.filter((e) => e.type === 'redirected'),
    [{ type: 'redirected', brokers: ['198.51.100.12'] }],
  );
  assert.equal(s.currentState, 'closed');
  // what tspc (and gogoc) read from it
  assert.deepEqual(redirectList(wire.slice(wire.indexOf('\r\n1200') + 2)), ['198.51.100.12']);
});

test('IPv6 entries are written canonical and read bracketed; no address that is not one reaches the wire', () => {
  const body = writeBrokerList([
    { type: 'ipv4', address: '198.51.100.12' },
    { type: 'ipv6', address: '2001:DB8:0:0::9' },
  ]);
  assert.match(body, /<address type="ipv6">2001:db8::9<\/address>/);
  assert.deepEqual(redirectList(body), ['198.51.100.12', '[2001:db8::9]']);
  assert.throws(() => writeBrokerList([{ type: 'ipv4', address: '198.51.100.12"><x' }]), /not a broker address/);
  assert.throws(() => writeBrokerList([{ type: 'ipv6', address: 'fe80::1%eth0' }]), /not a broker address/);
  assert.throws(() => writeBrokerList([]), /at least one broker/);
});
