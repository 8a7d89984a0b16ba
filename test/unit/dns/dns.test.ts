/** The DNS pieces on their own: where a prefix's reverse zone is delegated, which name servers are accepted,
 *  the update message's bytes, and a reply reader that refuses what does not fit (dns/). */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { checkNameServers, reverseZoneNames } from '../../../src/dns/reverse.js';
import { signRequest, verifyReply, type TsigKey } from '../../../src/dns/tsig.js';
import { buildUpdate } from '../../../src/dns/update.js';
import { encodeHeader, encodeName, parseMessage, readName } from '../../../src/dns/wire.js';

describe('reverse zone names', () => {
  it('puts a /48 and a /56 at one nibble-aligned name each', () => {
    assert.deepEqual(reverseZoneNames('2001:db8:f01::', 48), ['1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa']);
    assert.deepEqual(reverseZoneNames('2001:db8:f01:ab00::', 56), ['b.a.1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa']);
  });

  it('splits a length between nibbles into the zones it covers', () => {
    assert.deepEqual(reverseZoneNames('2001:db8:f01:4000::', 50), [
      '4.1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa',
      '5.1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa',
      '6.1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa',
      '7.1.0.f.0.8.b.d.0.1.0.0.2.ip6.arpa',
    ]);
    assert.equal(reverseZoneNames('2001:db8::', 61).length, 8);
  });
});

describe('name servers a user may delegate to', () => {
  it('takes fully qualified host names, canonical and without duplicates', () => {
    assert.deepEqual(checkNameServers(['NS1.Example.NET.', 'ns1.example.net', 'ns-2.example.org'], 4), [
      'ns1.example.net',
      'ns-2.example.org',
    ]);
  });

  for (const [bad, why] of [
    ['localhost', /fully qualified/],
    ['192.0.2.53', /address/],
    ['ns_1.example.net', /fully qualified/],
    ['-ns.example.net', /fully qualified/],
    ['ns..example.net', /fully qualified/],
    ['ns.1.0.8.b.d.0.1.0.0.2.ip6.arpa', /reverse tree/],
    ['ns.2.0.192.in-addr.arpa', /reverse tree/],
    ['', /not a host name/],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.net`, /not a host name/],
  ] as const)
    it(`refuses ${JSON.stringify(bad.slice(0, 30))}`, () => {
      assert.throws(() => checkNameServers([bad], 4), why);
    });

  it('refuses more than the limit', () => {
    assert.throws(() => checkNameServers(['a.example.net', 'b.example.net', 'c.example.net'], 2), /at most 2/);
  });
});

describe('update message and reply reader', () => {
  const key: TsigKey = { name: 'tsp-broker', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 1) };

  it('writes the zone, then per name the deletes (the whole set, or our own records) and the adds, and TSIG', () => {
    const msg = buildUpdate(0x1234, 'example.ip6.arpa', [
      { name: 'a.example.ip6.arpa', clear: true, remove: [], add: ['ns1.example.net', 'ns2.example.net'], ttl: 300 },
      { name: 'b.example.ip6.arpa', clear: false, remove: ['ns0.example.net'], add: [], ttl: 300 },
    ]);
    const { signed } = signRequest(msg, key, 1_700_000_000);
    const parsed = parseMessage(signed);
    assert.equal(parsed.header.id, 0x1234);
    assert.equal((parsed.header.flags >> 11) & 0xf, 5, 'opcode UPDATE');
    assert.deepEqual(parsed.header.counts, [1, 0, 4, 1]);
    assert.deepEqual(
      parsed.records.map((r) => [r.name, r.type, r.klass, r.ttl, r.rdata.length]),
      [
        ['a.example.ip6.arpa', 2, 255, 0, 0], // class ANY: delete every NS there
        ['a.example.ip6.arpa', 2, 1, 300, 17],
        ['a.example.ip6.arpa', 2, 1, 300, 17],
        ['b.example.ip6.arpa', 2, 254, 0, 17], // class NONE: delete only our record pointing to ns0
        ['tsp-broker', 250, 255, 0, parsed.records[4]!.rdata.length],
      ],
    );
  });

  it("checks a real server's signed reply: it verifies, and one changed byte or a late clock does not", () => {
    const rec = JSON.parse(readFileSync(new URL('./knot-reply.json', import.meta.url), 'utf8')) as {
      signedAt: number;
      secretBase64: string;
      requestMac: string;
      reply: string;
    };
    const k: TsigKey = { ...key, secret: Buffer.from(rec.secretBase64, 'base64') };
    const reply = Buffer.from(rec.reply, 'hex');
    const mac = Buffer.from(rec.requestMac, 'hex');
    assert.equal(verifyReply(reply, parseMessage(reply), k, mac, rec.signedAt), null);
    const flipped = Buffer.from(reply);
    flipped[3]! ^= 0x01; // the reply's RCODE: NOERROR becomes FORMERR
    assert.match(verifyReply(flipped, parseMessage(flipped), k, mac, rec.signedAt) ?? '', /does not verify/);
    const otherRequest = Buffer.from(mac);
    otherRequest[0]! ^= 0xff;
    assert.match(verifyReply(reply, parseMessage(reply), k, otherRequest, rec.signedAt) ?? '', /does not verify/);
    assert.match(verifyReply(reply, parseMessage(reply), k, mac, rec.signedAt + 400) ?? '', /clock/);
  });

  it('does not take a reply signed with another key', () => {
    const request = signRequest(buildUpdate(7, 'example.ip6.arpa', []), key, 1_700_000_000);
    // a "reply" signed by someone holding a different secret, over the same request MAC
    const forged = signRequest(buildUpdate(7, 'example.ip6.arpa', []), { ...key, secret: Buffer.alloc(32, 2) }, 1);
    const problem = verifyReply(forged.signed, parseMessage(forged.signed), key, request.mac, 1_700_000_000);
    assert.match(problem ?? '', /does not verify/);
    const unsigned = buildUpdate(7, 'example.ip6.arpa', []);
    assert.equal(verifyReply(unsigned, parseMessage(unsigned), key, request.mac, 1), 'reply is not signed');
  });

  it('refuses names that loop, run past the message, or use unknown label types', () => {
    const loop = Buffer.concat([encodeHeader({ id: 1, flags: 0, counts: [0, 0, 0, 0] }), Buffer.from([0xc0, 12])]);
    assert.throws(() => readName(loop, 12), /loop/);
    assert.throws(() => readName(Buffer.from([5, 0x61]), 0), /past the message/);
    assert.throws(() => readName(Buffer.from([0x80, 0]), 0), /unsupported/);
    const short = Buffer.concat([encodeHeader({ id: 1, flags: 0, counts: [0, 1, 0, 0] }), encodeName('a.example')]);
    assert.throws(() => parseMessage(short), /past the message/);
    assert.throws(() => parseMessage(Buffer.alloc(5)), /shorter than its header/);
  });
});
