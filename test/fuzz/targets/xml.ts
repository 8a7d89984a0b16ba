/** @module test/fuzz/targets/xml: the XML reader (src/protocol/xml.ts): parseXml, parseTunnelRequest (server
 *  side) and parseOffer (client side) on the same bytes, read as UTF-8 and as Latin-1.
 *
 *  Invariants: they throw nothing but BrokerError; an offer parseOffer accepts is written by writeOffer without
 *  an error other than BrokerError, and what writeOffer writes parseOffer reads back to the same offer (type,
 *  lifetime, addresses by value, prefix, keepalive, DNS); a request parseTunnelRequest accepts has a known
 *  action and, for create, a known type. */

import ipaddr from 'ipaddr.js';
import { parseOffer, parseTunnelRequest, parseXml, writeOffer, type Offer } from '../../../src/protocol/xml.js';
import { InvariantError, allowBrokerErrors, errorFeature, type Target } from '../engine.js';

const sameIpv6 = (a: string | undefined, b: string | undefined): boolean =>
  a === b ||
  (a !== undefined && b !== undefined && ipaddr.parse(a).toNormalizedString() === ipaddr.parse(b).toNormalizedString());

function sameOffer(a: Offer, b: Offer): string | undefined {
  if (a.type !== b.type) return 'type';
  if (Math.trunc(a.lifetimeS) !== b.lifetimeS && !(Number.isNaN(a.lifetimeS) && b.lifetimeS === 0)) return 'lifetime';
  if (a.serverIpv4 !== b.serverIpv4 || a.clientIpv4 !== b.clientIpv4) return 'IPv4 addresses';
  if (!sameIpv6(a.serverIpv6, b.serverIpv6) || !sameIpv6(a.clientIpv6, b.clientIpv6)) return 'IPv6 addresses';
  if (!!a.prefix !== !!b.prefix) return 'prefix presence';
  if (a.prefix && b.prefix && (a.prefix.length !== b.prefix.length || !sameIpv6(a.prefix.address, b.prefix.address)))
    return 'prefix';
  if (!sameIpv6(a.dnsServer, b.dnsServer)) return 'DNS server';
  const ka = a.keepalive && Math.trunc(a.keepalive.interval) > 0 ? a.keepalive : undefined;
  if (!!ka !== !!b.keepalive) return 'keepalive presence';
  if (
    ka &&
    b.keepalive &&
    (Math.trunc(ka.interval) !== b.keepalive.interval || !sameIpv6(ka.address, b.keepalive.address))
  )
    return 'keepalive';
  return undefined;
}

function exec(input: Uint8Array): string[] {
  const features: string[] = [];
  const shape = (what: string, r: { ok: true; value: unknown } | { ok: false; error: Error }) =>
    features.push(r.ok ? `${what}:ok` : `${what}:${errorFeature(r.error)}`);
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  for (const text of [b.toString('utf8'), b.toString('latin1')]) {
    const x = allowBrokerErrors('parseXml', () => parseXml(text));
    shape('xml', x);
    const req = allowBrokerErrors('parseTunnelRequest', () => parseTunnelRequest(text));
    shape('request', req);
    if (req.ok) {
      const r = req.value;
      if (!['create', 'accept', 'reject', 'delete', 'info'].includes(r.action))
        throw new InvariantError(`request action ${r.action}`, 'parseTunnelRequest');
      if (r.action === 'create' && !['v6v4', 'v6udpv4', 'v6anyv4', 'v4v6'].includes(r.type ?? ''))
        throw new InvariantError(`create type ${r.type}`, 'parseTunnelRequest');
      features.push(`request:${r.action}:${r.type}:${r.router ? 'router' : ''}:${r.keepaliveInterval !== undefined}`);
    }
    const offer = allowBrokerErrors('parseOffer', () => parseOffer(text));
    shape('offer', offer);
    if (offer.ok) {
      const written = allowBrokerErrors('writeOffer', () => writeOffer(offer.value));
      shape('write', written);
      if (written.ok) {
        const again = allowBrokerErrors('parseOffer(writeOffer)', () => parseOffer(written.value));
        if (!again.ok)
          throw new InvariantError(`parseOffer rejects what writeOffer wrote: ${again.error.message}`, 'writeOffer');
        const diff = sameOffer(offer.value, again.value);
        if (diff) throw new InvariantError(`writeOffer/parseOffer round trip changes the ${diff}`, 'writeOffer');
      }
    }
  }
  return features;
}

const DICTIONARY = [
  '<tunnel action="create" type="v6udpv4" proxy="no">',
  '<tunnel action="info" type="v6v4" lifetime="604800">',
  '<tunnel',
  '</tunnel>',
  'action="',
  'type="',
  'proxy="yes"',
  'lifetime="',
  'create',
  'accept',
  'reject',
  'delete',
  'info',
  'v6v4',
  'v6udpv4',
  'v6anyv4',
  'v4v6',
  '<server>',
  '</server>',
  '<client>',
  '</client>',
  '<address type="ipv4">',
  '<address type="ipv6">',
  '</address>',
  '192.0.2.1',
  '256.1.1.1',
  '2001:db8::1',
  '2001:0db8:0000:0000:0000:0000:0000:0001',
  '::ffff:192.0.2.1',
  'fe80::1%eth0',
  '::',
  '<keepalive interval="30">',
  '</keepalive>',
  '<router>',
  '</router>',
  '<router protocol="ripng">',
  '<prefix length="56">',
  '<prefix length="56"/>',
  '</prefix>',
  '<dns_server>',
  '</dns_server>',
  '<broker>',
  ' ',
  '\t',
].map((s) => Buffer.from(s, 'latin1'));

export const xmlTarget: Target = {
  name: 'xml',
  description: 'parseXml, parseTunnelRequest and parseOffer (with the writeOffer round trip)',
  exec,
  dictionary: DICTIONARY,
  maxLength: 8192,
};
