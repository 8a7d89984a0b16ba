/** @module address: small facts about peer addresses that several layers key limits by. Imports nothing. */

/** The /24 of an IPv4 address, as its first three octets (the address itself when it is not IPv4): the unit
 *  the half-open eviction, the anonymous quotas and the failure limiter count sources in. */
export function prefix24(address: string): string {
  const dot = address.lastIndexOf('.');
  return dot > 0 && !address.includes(':') ? address.slice(0, dot) : address;
}
