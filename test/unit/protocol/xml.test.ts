import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandIpv6,
  parseOffer,
  parseTunnelRequest,
  parseXml,
  writeOffer,
  type Offer,
} from '../../../src/protocol/xml.js';
import { writeActionRequest, writeCreateRequest } from '../../../src/protocol/request-writer.js';
import { framedReply, framedRequest } from '../../../src/protocol/framing/content-length.js';
import { checkOfferXml } from '../../helpers/gogoc-check.js';
import { loadRecordings } from '../../helpers/recordings.js';
import type { BrokerError } from '../../../src/errors.js';

const recordings = loadRecordings();
const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (e) {
    return (e as BrokerError).code;
  }
};

const offer01: Offer = {
  type: 'v6udpv4',
  lifetimeS: 604800,
  serverIpv4: '192.0.2.1',
  serverIpv6: '2001:db8:f00::1',
  clientIpv4: '192.0.2.2',
  clientIpv6: '2001:db8:f00::2',
  keepalive: { interval: 5, address: '2001:db8:f00::1' },
};

test('the offer for recording 01 is byte-identical to the reply gogoc accepted', () => {
  const rec = recordings.find((r) => r.name.startsWith('01'))!;
  const recorded = rec.messages.find((m) => m.from === 'server' && m.payload.includes('action="info"'))!.payload;
  assert.equal(framedReply(200, 'Success', writeOffer(offer01)).toString('latin1'), recorded);
});

test('the router offer of recording 09 is byte-identical (Content-length 606)', () => {
  const rec = recordings.find((r) => r.name.startsWith('09'))!;
  const recorded = rec.messages.find((m) => m.from === 'server' && m.payload.includes('action="info"'))!.payload;
  const ours = framedReply(
    200,
    'Success',
    writeOffer({ ...offer01, prefix: { address: '2001:db8:f01::', length: 56 } }),
  ).toString('latin1');
  assert.equal(ours, recorded);
  assert.ok(ours.startsWith('Content-length: 606\r\n'));
});

test('the project template with router and dns_server blocks is 721 bytes (722 with interval 30) and passes the strict check', () => {
  const full = { ...offer01, prefix: { address: '2001:db8:f01::', length: 56 }, dnsServer: '2001:db8:f00::1' };
  const r = framedReply(200, 'Success', writeOffer(full)).toString('latin1');
  assert.ok(r.startsWith('Content-length: 721\r\n'), r.slice(0, 30));
  const r30 = framedReply(
    200,
    'Success',
    writeOffer({ ...full, keepalive: { interval: 30, address: '2001:db8:f00::1' } }),
  );
  assert.ok(r30.toString().startsWith('Content-length: 722\r\n'));
  assert.deepEqual(checkOfferXml(writeOffer(full)), []);
  assert.match(writeOffer(full), /<prefix length="56">2001:0db8:0f01:0000:0000:0000:0000:0000<\/prefix>/);
});

test('offers never carry unvalidated values, and an offer without keepalive omits the element', () => {
  assert.throws(() => writeOffer({ ...offer01, clientIpv4: '192.0.2.2"><x' }), /IPv4/);
  for (const bad of ['192.0.2.02', '192.0.2', '192.0.2.256', '192.0.2.1.', ' 192.0.2.1'])
    assert.throws(() => writeOffer({ ...offer01, serverIpv4: bad }), /IPv4/, bad);
  assert.throws(() => writeOffer({ ...offer01, serverIpv6: 'zz::1' }));
  const noKa = writeOffer({ ...offer01, keepalive: { interval: 0, address: '2001:db8:f00::1' } });
  assert.doesNotMatch(noKa, /keepalive/);
});

test('a v4v6 offer: IPv6 endpoints, IPv4 inside, keepalives to the inner IPv4; read back by our client', () => {
  const v4v6 = {
    type: 'v4v6' as const,
    lifetimeS: 604800,
    serverIpv4: '198.51.100.1',
    serverIpv6: '2001:db8::1',
    clientIpv4: '198.51.100.2',
    clientIpv6: '2001:db8:c::10',
    keepalive: { interval: 30, address: '198.51.100.1' },
  };
  const xml = writeOffer(v4v6);
  assert.match(xml, /^<tunnel action="info" type="v4v6" lifetime="604800">\r\n/);
  assert.match(xml, /<keepalive interval="30">\r\n {6}<address type="ipv4">198\.51\.100\.1<\/address>/);
  const back = parseOffer(xml);
  assert.equal(back.type, 'v4v6');
  assert.deepEqual(back.keepalive, { interval: 30, address: '198.51.100.1' });
  assert.equal(back.clientIpv4, '198.51.100.2');
  assert.equal(back.serverIpv6, '2001:0db8:0000:0000:0000:0000:0000:0001');
  assert.throws(() => writeOffer({ ...v4v6, keepalive: { interval: 30, address: '2001:db8::1' } }), /IPv4/);
  assert.throws(() => writeOffer({ ...v4v6, type: 'v6anyv4' as never }), /concrete/);
  assert.throws(() => parseOffer(xml.replace('type="v4v6"', 'type="v6anyv4"')), /not concrete/);
});

test('the strict checker names what would break gogoc', () => {
  const good = writeOffer({ ...offer01, dnsServer: '2001:db8::53' });
  assert.deepEqual(checkOfferXml(good), []);
  assert.ok(
    checkOfferXml(good.replace('2001:0db8:0f00:0000:0000:0000:0000:0002', '2001:db8:f00::2')).some((p) =>
      p.includes('fully expanded'),
    ),
  );
  assert.ok(checkOfferXml(`<?xml version="1.0"?>${good}`).some((p) => p.includes('declaration')));
  assert.ok(checkOfferXml(good.replace('type="v6udpv4"', "type='v6udpv4'")).some((p) => p.includes('single quotes')));
  assert.ok(checkOfferXml(good.replace('>192.0.2.1<', '> 192.0.2.1 <')).some((p) => p.includes('whitespace')));
  assert.ok(checkOfferXml(writeOffer(offer01)).some((p) => p.includes('dns_server')));
  assert.ok(checkOfferXml(good.replace('type="v6udpv4"', 'type="v6anyv4"')).some((p) => p.includes('concrete')));
});

test('every recorded create request parses, and our writer reproduces it byte for byte', () => {
  let n = 0;
  for (const rec of recordings) {
    for (const m of rec.messages) {
      if (m.from !== 'client' || !m.payload.includes('action="create"')) continue;
      const body = m.payload.slice(m.payload.indexOf('\n') + 1);
      const req = parseTunnelRequest(body);
      assert.equal(req.action, 'create');
      assert.equal(req.type, rec.client_config.tunnel_mode);
      assert.equal(req.clientIpv4, '192.0.2.2');
      const written = writeCreateRequest({
        type: req.type!,
        clientIpv4: req.clientIpv4!,
        ...(req.keepaliveInterval !== undefined ? { keepaliveInterval: req.keepaliveInterval } : {}),
        ...(req.router?.prefixLength !== undefined ? { prefixLength: req.router.prefixLength } : {}),
      });
      assert.equal(framedRequest(written).toString('latin1'), m.payload, rec.name);
      n++;
    }
  }
  assert.ok(n >= 11, `${n} create requests checked`);
  assert.equal(
    framedRequest(writeActionRequest('accept')).toString(),
    'Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n',
  );
});

test('requests are parsed tolerantly: LF, attribute order, single quotes, no proxy, unknown elements, comments', () => {
  const req = parseTunnelRequest(
    `<?xml version="1.0"?>\n<!-- hi --><tunnel type='V6UDPV4' action="CREATE">\n<client><foo bar="1"><baz/></foo>\n<address type="ipv4">198.51.100.7</address><keepalive interval="45"></keepalive><router protocol="bgp"><prefix length='60'/></router></client></tunnel>\n\0\0`,
  );
  assert.deepEqual(req, {
    action: 'create',
    proxy: false,
    type: 'v6udpv4',
    clientIpv4: '198.51.100.7',
    keepaliveInterval: 45,
    router: { prefixLength: 60, protocol: 'bgp' },
  });
  assert.deepEqual(parseTunnelRequest('<tunnel action="accept"/>'), { action: 'accept', proxy: false });
  assert.equal(parseTunnelRequest('<tunnel action="create" type="v6v4" proxy="yes"><client/></tunnel>').proxy, true);
  // tabs, CR LF and spaces anywhere between the parts, and around the address text (trimmed)
  const spaced = parseTunnelRequest(
    '\r\n<tunnel\taction = "create"\r\n type=\t"v6v4" >\t<client >\r\n<address\ttype="ipv4"> 192.0.2.9\t</address></client ></tunnel\t>\r\n',
  );
  assert.equal(spaced.clientIpv4, '192.0.2.9');
});

test('request errors map to the right status codes', () => {
  assert.equal(
    codeOf(() => parseTunnelRequest('<tunnel action="explode"></tunnel>')),
    'TSP_BAD_XML',
  );
  assert.equal(
    codeOf(() => parseTunnelRequest('<tunnel></tunnel>')),
    'TSP_BAD_XML',
  );
  assert.equal(
    codeOf(() => parseTunnelRequest('<tunnel action="create" type="v6overcarrierpigeon"/>')),
    'TSP_UNSUPPORTED_TUNNEL',
  );
  assert.equal(
    codeOf(() => parseTunnelRequest('<tunnel action="create"/>')),
    'TSP_BAD_XML',
  );
  assert.equal(
    codeOf(() =>
      parseTunnelRequest(
        '<tunnel action="create" type="v6v4"><client><address type="ipv4">300.1.2.3</address></client></tunnel>',
      ),
    ),
    'TSP_BAD_IPV4',
  );
  // a dotted quad exactly: no leading zeros, four parts, each at most 255
  for (const bad of ['192.0.2.01', '192.0.2', '192.0.2.1.5', '0x7f.0.0.1', '192.0.2.-1'])
    assert.equal(
      codeOf(() =>
        parseTunnelRequest(
          `<tunnel action="create" type="v6v4"><client><address type="ipv4">${bad}</address></client></tunnel>`,
        ),
      ),
      'TSP_BAD_IPV4',
      bad,
    );
  assert.equal(
    codeOf(() =>
      parseTunnelRequest(
        '<tunnel action="create" type="v6v4"><client><address type="ipv6">2001:db8::zz</address></client></tunnel>',
      ),
    ),
    'TSP_BAD_IPV6',
  );
  assert.equal(
    codeOf(() =>
      parseTunnelRequest(
        '<tunnel action="create" type="v6v4"><client><router><prefix length="abc"/></router></client></tunnel>',
      ),
    ),
    'TSP_PREFIX_LENGTH_UNSUPPORTED',
  );
  const noLen = parseTunnelRequest(
    '<tunnel action="create" type="v6v4"><client><router><prefix/></router></client></tunnel>',
  );
  assert.deepEqual(noLen.router, {}, 'missing length is reported as undefined (the broker answers 520)');
  assert.equal(
    codeOf(() => parseTunnelRequest('<route action="create"/>')),
    'TSP_BAD_XML',
  );
});

test('the XML reader refuses DTDs, entities, CDATA, mismatched tags and runaway nesting', () => {
  for (const bad of [
    '<!DOCTYPE x [<!ENTITY e "boom">]><tunnel action="info"/>',
    '<tunnel action="&e;"/>',
    '<tunnel><![CDATA[x]]></tunnel>',
    '<tunnel><client></tunnel>',
    '<tunnel action="info">',
    '<tunnel action=info/>',
    '<tunnel/><tunnel/>',
    '',
    `${'<a>'.repeat(40)}${'</a>'.repeat(40)}`,
  ])
    assert.equal(
      codeOf(() => parseXml(bad)),
      'TSP_BAD_XML',
      bad.slice(0, 40),
    );
  assert.equal(parseXml('<a x="&lt;&amp;&#65;">t &gt; u</a>').attrs.x, '<&A');
});

test('character references outside XML characters are TSP_BAD_XML, not a RangeError (fuzz: test/fuzz/regressions/xml)', () => {
  for (const ref of [
    '&#x110000;',
    '&#1114112;',
    '&#99999999999999999999;',
    '&#xFFFFFFFFF;',
    '&#0;',
    '&#xD800;',
    '&#xFFFE;',
  ])
    for (const doc of [`<a x="${ref}"/>`, `<a>${ref}</a>`])
      assert.equal(
        codeOf(() => parseXml(doc)),
        'TSP_BAD_XML',
        doc,
      );
  assert.equal(
    codeOf(() => parseTunnelRequest('<tunnel action="create" type="v6v4"><client>&#x110000;</client></tunnel>')),
    'TSP_BAD_XML',
  );
  assert.equal(parseXml('<a x="&#x10FFFF;&#9;&#x20;">&#xE000;</a>').attrs.x, '\u{10FFFF}\t ');
});

test('expandIpv6 writes eight groups of four hex digits', () => {
  assert.equal(expandIpv6('2001:db8:f01::'), '2001:0db8:0f01:0000:0000:0000:0000:0000');
  assert.equal(expandIpv6('::1'), '0000:0000:0000:0000:0000:0000:0000:0001');
  assert.equal(expandIpv6('2001:DB8::A'), '2001:0db8:0000:0000:0000:0000:0000:000a');
});

test('client side: offers round-trip through parseOffer, compressed addresses accepted', () => {
  const full: Offer = { ...offer01, prefix: { address: '2001:db8:f01::', length: 56 }, dnsServer: '2001:db8::53' };
  const back = parseOffer(writeOffer(full));
  assert.equal(back.type, 'v6udpv4');
  assert.equal(back.prefix?.length, 56);
  assert.equal(expandIpv6(back.clientIpv6), expandIpv6(full.clientIpv6));
  assert.equal(back.keepalive?.interval, 5);
  const compressed = parseOffer(
    '<tunnel action="info" type="v6v4" lifetime="1440"><server><address type="ipv4">192.0.2.1</address><address type="ipv6">2001:DB8::1</address></server><client><address type="ipv4">192.0.2.2</address><address type="ipv6">2001:db8::2</address></client></tunnel>',
  );
  assert.equal(compressed.serverIpv6, '2001:db8::1');
  assert.equal(compressed.keepalive, undefined);
  assert.throws(() => parseOffer('<tunnel action="info" type="v6anyv4"></tunnel>'), /concrete/);
  assert.throws(
    () =>
      parseOffer(
        '<tunnel action="info" type="v6v4"><server><address type="ipv4">192.0.2.1</address></server></tunnel>',
      ),
    /ipv6/,
  );
});

test('router dns_server names (type dn) are read as given, other address types ignored, and written back', () => {
  const written = writeCreateRequest({
    type: 'v6v4',
    clientIpv4: '192.0.2.2',
    prefixLength: 56,
    dnsServers: ['ns1.example.net', 'NS2.example.net.'],
  });
  assert.match(written, /<router>\r\n {3}<prefix length="56"\/>\r\n {3}<dns_server>\r\n {4}<address type="dn">ns1/);
  const req = parseTunnelRequest(
    written.replace('</dns_server>', '<address type="ipv6">2001:db8::53</address></dns_server>'),
  );
  assert.deepEqual(req.router, { prefixLength: 56, dnsServers: ['ns1.example.net', 'NS2.example.net.'] });
  const none = parseTunnelRequest(writeCreateRequest({ type: 'v6v4', clientIpv4: '192.0.2.2', prefixLength: 56 }));
  assert.deepEqual(none.router, { prefixLength: 56 });
});
