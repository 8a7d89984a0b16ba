/** @module protocol/xml: TSP's XML messages. A small strict-but-tolerant reader of our own (no DTDs, no
 *  entities beyond the five predefined, no external references: docs/protocol.md §6.8), and writers that emit
 *  byte-exact forms gogoc accepts, built from string templates with validated values (§6.3). Pure. */

import ipaddr from 'ipaddr.js';
import { ipv4Number } from '../address.js';
import { expandedIpv6 } from '../ipv6-text.js';
import { RemoteProtocolError } from '../errors.js';
import type { TunnelType } from '../tunnel-model.js';

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /[A-Za-z_][A-Za-z0-9_.:-]*/y;
const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const MAX_DEPTH = 16;
const MAX_ELEMENTS = 256;

/** What `\s` matches in a regular expression, by UTF-16 code unit (without running one a character). */
const isSpace = (c: number): boolean =>
  c <= 0x20
    ? c === 0x20 || (c >= 0x09 && c <= 0x0d)
    : c >= 0xa0 && (c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || SPACES.includes(c));
const SPACES = [0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff];

/** XML 1.0's Char production: what a character reference may name. */
const isXmlChar = (c: number): boolean =>
  c === 0x9 ||
  c === 0xa ||
  c === 0xd ||
  (c >= 0x20 && c <= 0xd7ff) ||
  (c >= 0xe000 && c <= 0xfffd) ||
  (c >= 0x10000 && c <= 0x10ffff);

function decodeEntities(s: string): string {
  if (!s.includes('&')) return s; // most text and values: nothing to decode, no regular expression run
  return s.replace(/&([a-z]+|#[0-9]+|#x[0-9a-fA-F]+);|&/g, (m, ent: string | undefined) => {
    if (ent === undefined) throw new RemoteProtocolError('TSP_BAD_XML', 'bare & in XML');
    if (ent.startsWith('#')) {
      // out of range (&#x110000;, &#99999999999;) or not a character (&#0;, a lone surrogate): fromCodePoint
      // would throw a RangeError or let a NUL through
      const c = ent.startsWith('#x') ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      if (!isXmlChar(c)) throw new RemoteProtocolError('TSP_BAD_XML', `${m.slice(0, 16)} is not a character`);
      return String.fromCodePoint(c);
    }
    const v = PREDEFINED[ent];
    if (v === undefined) throw new RemoteProtocolError('TSP_BAD_XML', `entity ${m} is not allowed`);
    return v;
  });
}

/** Parses one XML document with a single root element. Tolerates an XML declaration, comments, any
 *  whitespace and line ends, attributes in any order with either quote, self-closing tags, trailing
 *  whitespace and NULs. Rejects DOCTYPE, CDATA, unknown entities, mismatched tags. Throws TSP_BAD_XML. */
export function parseXml(input: string): XmlElement {
  const r = new XmlReader(input);
  r.skipMisc();
  const root = r.element(0);
  r.skipMisc();
  if (r.i < input.length) r.fail('content after the root element');
  return root;
}

/** The reader behind parseXml: a position in the text and one method per construct. */
class XmlReader {
  i = 0;
  private count = 0;
  private readonly n: number;
  constructor(private readonly s: string) {
    this.n = s.length;
  }

  fail(what: string): never {
    throw new RemoteProtocolError('TSP_BAD_XML', `${what} at offset ${this.i}`);
  }

  /** Whitespace, NULs, processing instructions and comments between the document's parts. */
  skipMisc(): void {
    const s = this.s;
    for (;;) {
      while (this.i < this.n && (isSpace(s.charCodeAt(this.i)) || s.charCodeAt(this.i) === 0)) this.i++;
      if (s.startsWith('<?', this.i)) this.i = this.after('?>', 'unterminated processing instruction');
      else if (s.startsWith('<!--', this.i)) this.i = this.after('-->', 'unterminated comment');
      else if (s.startsWith('<!', this.i)) this.fail('DOCTYPE, CDATA and declarations are not allowed');
      else return;
    }
  }

  element(depth: number): XmlElement {
    if (depth > MAX_DEPTH) this.fail('elements nested too deep');
    if (++this.count > MAX_ELEMENTS) this.fail('too many elements');
    if (this.s[this.i] !== '<') this.fail('expected <');
    this.i++;
    const name = this.readName();
    const attrs: Record<string, string> = {};
    if (this.attributes(attrs) === 'selfClosing') return { name, attrs, children: [], text: '' };
    return this.content(name, attrs, depth);
  }

  /** Reads attributes up to the end of the start tag. */
  private attributes(attrs: Record<string, string>): 'selfClosing' | 'open' {
    const s = this.s;
    for (;;) {
      this.skipSpace();
      if (s.startsWith('/>', this.i)) {
        this.i += 2;
        return 'selfClosing';
      }
      if (s[this.i] === '>') {
        this.i++;
        return 'open';
      }
      const an = this.readName();
      this.skipSpace();
      if (s[this.i] !== '=') this.fail(`expected = after attribute ${an}`);
      this.i++;
      this.skipSpace();
      const q = s[this.i];
      if (q !== '"' && q !== "'") this.fail(`attribute ${an} value must be quoted`);
      const e = s.indexOf(q!, this.i + 1);
      if (e < 0) this.fail('unterminated attribute value');
      const raw = s.slice(this.i + 1, e);
      if (raw.includes('<')) this.fail('< in attribute value');
      attrs[an] = decodeEntities(raw);
      this.i = e + 1;
    }
  }

  /** Children and text up to the matching end tag. */
  private content(name: string, attrs: Record<string, string>, depth: number): XmlElement {
    const s = this.s;
    const children: XmlElement[] = [];
    let text = '';
    for (;;) {
      if (this.i >= this.n) this.fail(`unterminated element <${name}>`);
      if (s.startsWith('</', this.i)) {
        this.i += 2;
        const close = this.readName();
        if (close !== name) this.fail(`</${close}> closes <${name}>`);
        this.skipSpace();
        if (s[this.i] !== '>') this.fail('expected >');
        this.i++;
        return { name, attrs, children, text: text.trim() };
      }
      if (s.startsWith('<!--', this.i)) {
        this.i = this.after('-->', 'unterminated comment');
        continue;
      }
      if (s.startsWith('<!', this.i) || s.startsWith('<?', this.i))
        this.fail('declarations are not allowed inside elements');
      if (s[this.i] === '<') {
        children.push(this.element(depth + 1));
        continue;
      }
      const e = s.indexOf('<', this.i);
      text += decodeEntities(e < 0 ? s.slice(this.i) : s.slice(this.i, e));
      this.i = e < 0 ? this.n : e;
    }
  }

  private readName(): string {
    NAME.lastIndex = this.i;
    const m = NAME.exec(this.s);
    if (!m) return this.fail('expected a name');
    this.i += m[0].length;
    return m[0].toLowerCase();
  }

  private skipSpace(): void {
    while (this.i < this.n && isSpace(this.s.charCodeAt(this.i))) this.i++;
  }

  /** The offset just past the next `end`, or a failure named `what`. */
  private after(end: string, what: string): number {
    const e = this.s.indexOf(end, this.i);
    if (e < 0) this.fail(what);
    return e + end.length;
  }
}

export const child = (e: XmlElement | undefined, name: string): XmlElement | undefined =>
  e?.children.find((c) => c.name === name);
const children = (e: XmlElement | undefined, name: string): XmlElement[] =>
  e ? e.children.filter((c) => c.name === name) : [];

// ---- requests (client -> server) ----

export type TunnelAction = 'create' | 'accept' | 'reject' | 'delete' | 'info';
export type RequestedType = 'v6v4' | 'v6udpv4' | 'v6anyv4' | 'v4v6';
const ACTIONS: readonly TunnelAction[] = ['create', 'accept', 'reject', 'delete', 'info'];
const TYPES: readonly RequestedType[] = ['v6v4', 'v6udpv4', 'v6anyv4', 'v4v6'];

export interface TunnelRequest {
  action: TunnelAction;
  /** Present for create. */
  type?: RequestedType;
  proxy: boolean;
  /** The client's own idea of its IPv4 (its local socket address): the input to NAT detection. */
  clientIpv4?: string;
  /** The same for IPv6 (a v4v6 client's own address). */
  clientIpv6?: string;
  /** The keepalive interval the client wishes (the offer decides). */
  keepaliveInterval?: number;
  /** Router mode: the requested prefix length. `prefixLength` undefined means the length was missing (520).
   *  `dnsServers`: name servers for the prefix's reverse zone (`<dns_server><address type="dn">`), unchecked. */
  router?: { prefixLength?: number; protocol?: string; dnsServers?: string[] };
}

/** Reads a tunnel request. Unknown elements and attributes are ignored; enumerations are validated:
 *  unknown action 500, unknown type 303, malformed client IPv4 501, bad prefix length 518. */
export function parseTunnelRequest(xml: string): TunnelRequest {
  const root = parseXml(xml);
  if (root.name !== 'tunnel')
    throw new RemoteProtocolError('TSP_BAD_XML', `root element is <${root.name}>, expected <tunnel>`);
  const action = (root.attrs.action ?? '').toLowerCase();
  if (!ACTIONS.includes(action as TunnelAction))
    throw new RemoteProtocolError(
      'TSP_BAD_XML',
      action ? `unknown tunnel action "${action}"` : 'tunnel action missing',
    );
  const req: TunnelRequest = {
    action: action as TunnelAction,
    proxy: (root.attrs.proxy ?? 'no').toLowerCase() === 'yes',
  };
  if (action !== 'create') return req;
  const type = (root.attrs.type ?? '').toLowerCase();
  if (!type) throw new RemoteProtocolError('TSP_BAD_XML', 'create without a tunnel type');
  if (!TYPES.includes(type as RequestedType))
    throw new RemoteProtocolError('TSP_UNSUPPORTED_TUNNEL', `unknown tunnel type "${type}"`);
  req.type = type as RequestedType;
  const client = child(root, 'client');
  const v4 = children(client, 'address').find((a) => (a.attrs.type ?? '').toLowerCase() === 'ipv4');
  if (v4) {
    if (ipv4Number(v4.text) === undefined)
      throw new RemoteProtocolError('TSP_BAD_IPV4', `client IPv4 address "${v4.text.slice(0, 40)}" is not valid`);
    req.clientIpv4 = v4.text;
  }
  const v6 = children(client, 'address').find((a) => (a.attrs.type ?? '').toLowerCase() === 'ipv6');
  if (v6 && !ipaddr.IPv6.isValid(v6.text))
    throw new RemoteProtocolError('TSP_BAD_IPV6', `client IPv6 address "${v6.text.slice(0, 60)}" is not valid`);
  if (v6) req.clientIpv6 = v6.text;
  const ka = child(client, 'keepalive');
  if (ka?.attrs.interval !== undefined && /^\d{1,6}$/.test(ka.attrs.interval.trim()))
    req.keepaliveInterval = Number(ka.attrs.interval.trim());
  const router = child(client, 'router');
  if (router) {
    const prefix = child(router, 'prefix');
    const lenText = prefix?.attrs.length?.trim();
    const r: NonNullable<TunnelRequest['router']> = {};
    if (lenText !== undefined && lenText !== '') {
      if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > 128)
        throw new RemoteProtocolError(
          'TSP_PREFIX_LENGTH_UNSUPPORTED',
          `prefix length "${lenText.slice(0, 10)}" is not a number of bits`,
        );
      r.prefixLength = Number(lenText);
    }
    if (router.attrs.protocol) r.protocol = router.attrs.protocol;
    const dn = children(child(router, 'dns_server'), 'address').filter(
      (a) => (a.attrs.type ?? '').toLowerCase() === 'dn',
    );
    if (dn.length) r.dnsServers = dn.map((a) => a.text);
    req.router = r;
  }
  return req;
}

// ---- offers (server -> client) ----

export interface Offer {
  type: TunnelType;
  lifetimeS: number;
  serverIpv4: string;
  serverIpv6: string;
  clientIpv4: string;
  clientIpv6: string;
  /** Omitted or interval 0: no keepalives (§6.6). */
  keepalive?: { interval: number; address: string };
  prefix?: { address: string; length: number };
  /** Resolver for the client; always sent by our broker (unpatched gogoc crashes without it, §6.5). */
  dnsServer?: string;
}

/** The types an offer may name (v6anyv4 is a request's wish, never an offer). */
const OFFER_TYPES: readonly TunnelType[] = ['v6v4', 'v6udpv4', 'v4v6'];

/** Eight groups of four zero-padded lower-case hex digits (mandatory in <prefix>, §6.3 rule 6). */
export function expandIpv6(address: string): string {
  const expanded = expandedIpv6(address);
  if (expanded === undefined) throw new Error(`not an IPv6 address: ${address}`);
  return expanded;
}

function checkedIpv4(s: string): string {
  if (ipv4Number(s) === undefined) throw new RemoteProtocolError('TSP_BAD_IPV4', `not an IPv4 address: ${s}`);
  return s;
}

/** The offer XML in the exact form gogoc accepts (no declaration, double quotes, one space after names, no
 *  whitespace in text, CR LF; §6.2 template with router and dns_server blocks). Values are validated here:
 *  nothing unvalidated reaches the template. */
export function writeOffer(o: Offer): string {
  const ka = o.keepalive && o.keepalive.interval > 0 ? o.keepalive : undefined;
  const type = OFFER_TYPES.find((t) => t === o.type);
  if (!type) throw new RemoteProtocolError('TSP_UNSUPPORTED_TUNNEL', `not a concrete tunnel type: ${String(o.type)}`);
  const lines = [
    `<tunnel action="info" type="${type}" lifetime="${Math.trunc(o.lifetimeS)}">`,
    '  <server>',
    `    <address type="ipv4">${checkedIpv4(o.serverIpv4)}</address>`,
    `    <address type="ipv6">${expandIpv6(o.serverIpv6)}</address>`,
    '  </server>',
    '  <client>',
    `    <address type="ipv4">${checkedIpv4(o.clientIpv4)}</address>`,
    `    <address type="ipv6">${expandIpv6(o.clientIpv6)}</address>`,
  ];
  if (o.prefix)
    lines.push(
      '    <router>',
      `      <prefix length="${Math.trunc(o.prefix.length)}">${expandIpv6(o.prefix.address)}</prefix>`,
      '    </router>',
    );
  if (o.dnsServer)
    lines.push(
      '    <dns_server>',
      `      <address type="ipv6">${expandIpv6(o.dnsServer)}</address>`,
      '    </dns_server>',
    );
  // a v4v6 tunnel's keepalives are ICMP echoes to the server's inner IPv4
  if (ka)
    lines.push(
      `    <keepalive interval="${Math.trunc(ka.interval)}">`,
      type === 'v4v6'
        ? `      <address type="ipv4">${checkedIpv4(ka.address)}</address>`
        : `      <address type="ipv6">${expandIpv6(ka.address)}</address>`,
      '    </keepalive>',
    );
  lines.push('  </client>', '</tunnel>');
  return lines.map((l) => `${l}\r\n`).join('');
}

/** Reads an offer on the client side (tolerant: compressed IPv6 accepted, values lower-cased), checking what
 *  a client needs: a concrete type, four addresses, a prefix with a numeric length (docs/protocol.md §13.2). */
export function parseOffer(xml: string): Offer {
  const root = parseXml(xml);
  if (root.name !== 'tunnel') throw new RemoteProtocolError('TSP_BAD_XML', 'offer root is not <tunnel>');
  const type = OFFER_TYPES.find((t) => t === (root.attrs.type ?? '').toLowerCase());
  if (!type)
    throw new RemoteProtocolError(
      'TSP_UNSUPPORTED_TUNNEL',
      `offer type "${(root.attrs.type ?? '').slice(0, 16)}" is not concrete`,
    );
  const addr = (e: XmlElement | undefined, t: 'ipv4' | 'ipv6', what: string): string => {
    const a = children(e, 'address').find((x) => (x.attrs.type ?? '').toLowerCase() === t);
    const v = a?.text.toLowerCase() ?? '';
    const ok = t === 'ipv4' ? ipaddr.IPv4.isValidFourPartDecimal(v) : ipaddr.IPv6.isValid(v);
    if (!ok)
      throw new RemoteProtocolError(
        t === 'ipv4' ? 'TSP_BAD_IPV4' : 'TSP_BAD_IPV6',
        `offer ${what} ${t} address "${v}" invalid`,
      );
    return v;
  };
  const server = child(root, 'server');
  const client = child(root, 'client');
  const offer: Offer = {
    type,
    lifetimeS: Number(root.attrs.lifetime ?? 0) || 0,
    serverIpv4: addr(server, 'ipv4', 'server'),
    serverIpv6: addr(server, 'ipv6', 'server'),
    clientIpv4: addr(client, 'ipv4', 'client'),
    clientIpv6: addr(client, 'ipv6', 'client'),
  };
  const prefix = child(child(client, 'router'), 'prefix');
  if (prefix) {
    const len = prefix.attrs.length ?? '';
    if (!/^\d{1,3}$/.test(len) || Number(len) > 128)
      throw new RemoteProtocolError('TSP_BAD_XML', 'offer prefix without a numeric length');
    const p = prefix.text.toLowerCase();
    if (!ipaddr.IPv6.isValid(p)) throw new RemoteProtocolError('TSP_BAD_IPV6', `offer prefix "${p}" invalid`);
    offer.prefix = { address: p, length: Number(len) };
  }
  const dns = child(client, 'dns_server');
  if (dns) offer.dnsServer = addr(dns, 'ipv6', 'dns_server');
  const ka = child(client, 'keepalive');
  const interval = Number(ka?.attrs.interval ?? 0);
  if (ka && interval > 0)
    offer.keepalive = { interval, address: addr(ka, type === 'v4v6' ? 'ipv4' : 'ipv6', 'keepalive') };
  return offer;
}
