/** @module protocol/request-writer: the client's TSP requests (tspc, tests and benchmarks), byte-identical to
 *  gogoc's for the same settings (docs/protocol.md §6.1). Re-exported by protocol/xml. Pure. */

import type { RequestedType } from './xml.js';

/** The create request, byte-identical to gogoc's for the same settings (docs/protocol.md §6.1). */
export function writeCreateRequest(p: {
  type: RequestedType;
  /** The client's own IPv4 (its socket's local address); unused for v4v6. */
  clientIpv4: string;
  /** v4v6: the client's own IPv6 instead (v4v6 runs TSP over IPv6). */
  clientIpv6?: string;
  keepaliveInterval?: number; // undefined: no <keepalive> (gogoc keepalive=no)
  prefixLength?: number; // router mode
  dnsServers?: readonly string[]; // router mode: reverse-DNS delegation (gogoc dns_server=)
}): string {
  const v4v6 = p.type === 'v4v6';
  const lines = [
    `<tunnel action="create" type="${p.type}" proxy="no">`,
    ' <client>',
    v4v6
      ? `  <address type="ipv6">${p.clientIpv6 ?? '::'}</address>`
      : `  <address type="ipv4">${p.clientIpv4}</address>`,
  ];
  // the keepalive address is a placeholder the offer replaces: :: for IPv6 echoes, 127.0.0.1 for v4v6's IPv4 ones
  if (p.keepaliveInterval !== undefined)
    lines.push(
      `  <keepalive interval="${p.keepaliveInterval}">`,
      v4v6 ? '    <address type="ipv4">127.0.0.1</address>' : '    <address type="ipv6">::</address>',
      '  </keepalive>',
    );
  if (p.prefixLength !== undefined) {
    lines.push('  <router>', `   <prefix length="${p.prefixLength}"/>`);
    if (p.dnsServers?.length)
      lines.push(
        '   <dns_server>',
        ...p.dnsServers.map((n) => `    <address type="dn">${n}</address>`),
        '   </dns_server>',
      );
    lines.push('  </router>');
  }
  lines.push(' </client>', '</tunnel>');
  return lines.map((l) => `${l}\r\n`).join('');
}

/** `<tunnel action="accept"></tunnel>\r\n` and friends: 35 bytes for accept (§6.7). */
export function writeActionRequest(action: 'accept' | 'reject' | 'delete' | 'info'): string {
  return `<tunnel action="${action}"></tunnel>\r\n`;
}
