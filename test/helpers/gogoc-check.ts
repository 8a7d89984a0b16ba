/** @module test/helpers/gogoc-check: a strict checker for server output, naming anything that would break
 *  gogoc 1.2 (docs/protocol.md §2.6, §4, §5.4, §6.3, §12). Used by the replay tests and by tspc as a test tool.
 *  Returns a list of problems; empty means gogoc would accept it. Pure. */

const IPV6_EXPANDED = /^[0-9a-f]{4}(:[0-9a-f]{4}){7}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** CAPABILITY: exact prefix, upper-case TUNNEL values, no PASSDSS, CR LF at the end (the last token is lost
 *  without it). */
export function checkCapability(line: string): string[] {
  const p: string[] = [];
  if (!line.startsWith('CAPABILITY ')) p.push('does not start with "CAPABILITY "');
  if (!line.endsWith('\r\n')) p.push('does not end in CR LF: gogoc loses the last token');
  const tokens = line.trim().split(' ').slice(1);
  for (const t of tokens) {
    const [k, v] = t.split('=');
    if (k === 'TUNNEL' && v !== v?.toUpperCase()) p.push(`TUNNEL value ${v} is not upper case`);
    if (k === 'AUTH' && v?.toUpperCase() === 'PASSDSS-3DES-1')
      p.push('advertises PASSDSS-3DES-1 (gogoc picks it with auth_method=any)');
    if (k !== 'TUNNEL' && k !== 'AUTH') p.push(`unknown token ${t}`);
  }
  return p;
}

/** The decoded DIGEST-MD5 challenge must be exactly the form gogoc's parser reads. */
export function checkChallenge(decoded: string): string[] {
  const ok = /^realm="[^"\\]*",nonce="[0-9A-Za-z+/=]{16,}",qop="auth",algorithm=md5-sess,charset=utf-8$/.test(decoded);
  return ok ? [] : [`challenge not in the exact form gogoc reads: ${decoded}`];
}

/** A Content-length framed reply (no UDP header): exact spelling and length, status line counted inside. */
export function checkFramedReply(reply: string): { problems: string[]; status: number; body: string } {
  const problems: string[] = [];
  const m = /^Content-length: (\d+)\r\n/.exec(reply);
  if (!m) return { problems: ['does not start with "Content-length: N\\r\\n" (exact spelling)'], status: 0, body: '' };
  const n = Number(m[1]);
  const rest = reply.slice(m[0].length);
  const restBytes = Buffer.byteLength(rest, 'latin1');
  if (restBytes !== n) problems.push(`Content-length ${n} but ${restBytes} bytes follow`);
  const lf = rest.indexOf('\n');
  const statusLine = lf >= 0 ? rest.slice(0, lf + 1) : rest;
  const sm = /^(\d{3,4}) [^\r\n]*\r\n$/.exec(statusLine);
  if (!sm) problems.push('no "<code> <text>\\r\\n" status line inside the body');
  return { problems, status: sm ? Number(sm[1]) : 0, body: lf >= 0 ? rest.slice(lf + 1) : '' };
}

/** An offer's XML by gogoc's hand-written parser rules (§6.3). */
export function checkOfferXml(xml: string): string[] {
  const p: string[] = [];
  if (xml.startsWith('<?xml')) p.push('XML declaration present');
  if (/<!|&/.test(xml)) p.push('DOCTYPE, comment, CDATA or entity present');
  if (/'/.test(xml)) p.push('single quotes present');
  if (/<[a-z_]+[\t\r\n]/.test(xml)) p.push('whitespace other than one space after an element name');
  if (/<[a-z_]+ {2,}/.test(xml)) p.push('more than one space after an element name');
  if (/ =|= /.test(xml)) p.push('spaces around =');
  if (/>[ \t]+[^\s<]|[^\s>][ \t]+</.test(xml)) p.push('whitespace inside text content');
  if (!xml.endsWith('\r\n')) p.push('does not end in CR LF');
  if (/[^\r]\n/.test(xml)) p.push('LF without CR');
  const tunnel = /^<tunnel ([^>]*)>/.exec(xml);
  if (!tunnel) p.push('does not start with <tunnel ...>');
  else {
    if (!/\baction="info"/.test(tunnel[1]!)) p.push('tunnel action is not "info"');
    const type = /\btype="([^"]*)"/.exec(tunnel[1]!)?.[1];
    if (type !== 'v6v4' && type !== 'v6udpv4') p.push(`tunnel type "${type}" is not concrete`);
  }
  const section = (name: string) => new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml)?.[1] ?? '';
  const addr = (s: string, t: string) => new RegExp(`<address type="${t}">([^<]*)</address>`).exec(s)?.[1];
  const server = section('server');
  const client = section('client');
  const clientOwn = client
    .replace(/<keepalive[\s\S]*?<\/keepalive>/, '')
    .replace(/<dns_server>[\s\S]*?<\/dns_server>/, '')
    .replace(/<router>[\s\S]*?<\/router>/, '');
  for (const [where, s, t] of [
    ['server', server, 'ipv4'],
    ['server', server, 'ipv6'],
    ['client', clientOwn, 'ipv4'],
    ['client', clientOwn, 'ipv6'],
  ] as const) {
    const v = addr(s, t);
    if (v === undefined) p.push(`missing ${where} ${t} address`);
    else if (t === 'ipv4' ? !IPV4.test(v) : !IPV6_EXPANDED.test(v))
      p.push(`${where} ${t} address "${v}" not ${t === 'ipv4' ? 'dotted quad' : 'fully expanded'}`);
  }
  const prefix = /<prefix length="(\d+)">([^<]*)<\/prefix>/.exec(client);
  if (/<prefix/.test(client) && !prefix) p.push('prefix without a numeric length');
  if (prefix && !IPV6_EXPANDED.test(prefix[2]!))
    p.push(`prefix "${prefix[2]}" not fully expanded (gogoc truncates TSP_PREFIX by characters)`);
  const dns = section('dns_server');
  if (!dns) p.push('no <client><dns_server> (unpatched gogoc 1.2 crashes after accepting)');
  else if (!IPV6_EXPANDED.test(addr(dns, 'ipv6') ?? '')) p.push('dns_server address missing or not expanded');
  const ka = /<keepalive interval="(\d+)">([\s\S]*?)<\/keepalive>/.exec(client);
  if (ka && Number(ka[1]) > 0 && !IPV6_EXPANDED.test(addr(ka[2]!, 'ipv6') ?? ''))
    p.push('keepalive without an expanded ipv6 address');
  if (Buffer.byteLength(xml) > 1400) p.push('offer over 1400 bytes');
  return p;
}
