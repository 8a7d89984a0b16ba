/** @module config/reverse-dns: the `reverseDns` section: where the broker sends RFC 2136 updates that delegate
 *  router-mode prefixes' ip6.arpa zones (broker/reverse-dns.ts), and the TSIG key that signs them. Pure. */

import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { canonicalName, isWithin, reverseZoneNames } from '../dns/reverse.js';
import { TSIG_ALGORITHMS } from '../dns/tsig.js';

const DNS_NAME =
  /^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$/i;

export const reverseDnsSchema = z
  .object({
    /** The authoritative server that takes updates for `zone`: an IPv4 or IPv6 address (no lookup). */
    server: z.string().refine((s) => ipaddr.isValid(s), 'must be an IPv4 or IPv6 address'),
    port: z.number().int().min(1).max(65535).default(53),
    /** The zone on that server under which prefixes are delegated, e.g. '8.b.d.0.1.0.0.2.ip6.arpa'. */
    zone: z.string().refine((s) => DNS_NAME.test(s) && isWithin(s, 'ip6.arpa') && canonicalName(s) !== 'ip6.arpa', {
      message: "must be a zone under ip6.arpa, e.g. '8.b.d.0.1.0.0.2.ip6.arpa'",
    }),
    tsig: z
      .object({
        /** The key's name as the DNS server knows it. */
        name: z.string().refine((s) => DNS_NAME.test(s), 'must be a DNS name'),
        algorithm: z.enum(TSIG_ALGORITHMS).default('hmac-sha256'),
        /** The shared secret, base64 (as in BIND's and Knot's key files): at least 16 bytes. */
        secret: z
          .string()
          .refine(
            (s) => /^[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s, 'base64').length >= 16,
            'must be base64 of at least 16 bytes',
          ),
      })
      .strict(),
    /** TTL of the NS records published. */
    ttl: z.number().int().min(60).max(604800).default(86400),
    /** Name servers one account may delegate to. */
    maxNameServers: z.number().int().min(1).max(13).default(4),
    /** Changes of name servers one account may make in an hour (each is an update at the DNS server);
     *  beyond it, TSP answers 509 and the API 429. */
    changesPerHour: z.number().int().min(1).max(3600).default(12),
    /** One update's whole exchange (connect, send, answer). */
    timeoutMs: z.number().int().min(100).max(60000).default(3000),
  })
  .strict();

export type ReverseDnsConfig = z.infer<typeof reverseDnsSchema>;

/** Why `zone` cannot hold the delegations of prefixes from `pool` no shorter than `minLen`, or null when it can:
 *  every delegation point must lie strictly below the zone's apex. */
export function zoneProblem(zone: string, pool: string, minLen: number): string | null {
  const [addr, poolLen] = ipaddr.parseCIDR(pool);
  const poolNames = reverseZoneNames(addr.toString(), Math.max(4, Math.floor(poolLen / 4) * 4));
  if (!poolNames.every((n) => isWithin(n, zone)))
    return `does not contain the reverse names of the delegation pool ${pool} (${poolNames[0]})`;
  const zoneNibbles = canonicalName(zone).split('.').length - 2;
  if (Math.ceil(minLen / 4) <= zoneNibbles)
    return `a /${minLen} (pools.prefixLen.min) would be delegated at or above the zone's apex`;
  return null;
}
