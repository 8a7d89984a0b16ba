/** @module tunnel-model: what a tunnel is, in terms every layer shares (the store records it, the data plane
 *  carries it, the broker offers it, the admin shows it), so none of them has to import another for it.
 *  Usable by all, like errors.ts and clock.ts; imports nothing. */

/** The concrete encapsulations (v6anyv4 is resolved before a tunnel exists): IPv6 in protocol 41 (v6v4) or in
 *  UDP on the TSP flow (v6udpv4) over IPv4, and IPv4 in IPv6 (v4v6, next header 4, RFC 2473) for clients that
 *  have only IPv6. A v4v6 tunnel's outer addresses are IPv6 and its inner ones IPv4: the tunnel row's
 *  clientIpv6/serverIpv6 are then the endpoints and clientIpv4/serverIpv4 the addresses inside. */
export const TUNNEL_TYPES = ['v6v4', 'v6udpv4', 'v4v6'] as const;
export type TunnelType = (typeof TUNNEL_TYPES)[number];

/** The client's port as the tunnel knows it: 0 for v6v4 and v4v6, whose packets carry no port (RFC 4213, RFC
 *  2473), whatever port the control session came from; the session's port for v6udpv4. */
export function clientPortFor(type: TunnelType, port: number): number {
  return type === 'v6udpv4' ? port : 0;
}

/** The key a tunnel's client endpoint is known by ("ipv4:port", the port per clientPortFor): two tunnels with
 *  the same key cannot both be live, since the data plane tells them apart by it alone. */
export function endpointKey(type: TunnelType, address: string, port: number): string {
  return `${address}:${clientPortFor(type, port)}`;
}

/** The client endpoint as shown to people: the address alone for v6v4 and v4v6, "ipv4:port" for v6udpv4. */
export function endpointLabel(t: {
  type: TunnelType;
  clientIpv4: string;
  clientIpv6: string;
  clientPort: number;
}): string {
  return t.type === 'v6udpv4' ? `${t.clientIpv4}:${t.clientPort}` : endpointAddress(t);
}

/** The address a tunnel's client is reached at (its endpoint): the IPv6 address of a v4v6 tunnel, the IPv4 one
 *  of the others (see TunnelType: the row keeps both families' addresses, and the type says which is outer). */
export function endpointAddress(t: { type: TunnelType; clientIpv4: string; clientIpv6: string }): string {
  return t.type === 'v4v6' ? t.clientIpv6 : t.clientIpv4;
}

/** The client's address inside the tunnel: its IPv6 for v6v4 and v6udpv4, its IPv4 for v4v6. */
export function innerAddress(t: { type: TunnelType; clientIpv4: string; clientIpv6: string }): string {
  return t.type === 'v4v6' ? t.clientIpv4 : t.clientIpv6;
}
