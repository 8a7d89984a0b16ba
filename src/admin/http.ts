/** @module admin/http: small HTTP helpers the admin server needs and fastify does not ship: Cookie header
 *  parsing, Set-Cookie serialisation, and constant-time comparison of secrets. Pure functions. */

import { timingSafeEqual } from 'node:crypto';

/** Cookies from a Cookie header; the first occurrence of a name wins; malformed pairs are skipped. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (out.has(name)) continue;
    try {
      out.set(name, decodeURIComponent(value));
    } catch {
      // not percent-encoding we wrote: ignore the cookie
    }
  }
  return out;
}

export interface CookieOptions {
  maxAgeS?: number;
  secure: boolean;
  sameSite: 'Strict' | 'Lax';
  httpOnly: boolean;
}

export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'Path=/', `SameSite=${o.sameSite}`];
  if (o.maxAgeS !== undefined) parts.push(`Max-Age=${Math.max(0, Math.trunc(o.maxAgeS))}`);
  if (o.httpOnly) parts.push('HttpOnly');
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}

/** Constant-time string equality (lengths may differ: that alone is not secret). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
