/** @module protocol/client/replies: reading the server's replies on the client side, as pure functions:
 *  CAPABILITY, mechanism choice, the version fallback, a redirect's broker list, status lines
 *  (docs/protocol.md §4, §5, §10, §13.2). */

import { BrokerError } from '../../errors.js';
import type { TspVersion } from '../constants.js';
import { splitWhole } from '../framing/content-length.js';
import { stripTrailingNuls } from '../framing/lines.js';
import { statusOfLine } from '../status.js';
import { parseOffer, parseXml, type Offer } from '../xml.js';

export type ClientMechanism = 'ANONYMOUS' | 'PLAIN' | 'DIGEST-MD5';
export type AuthMethod = 'anonymous' | 'plain' | 'digest-md5' | 'any';
export type RequestedMode = 'v6udpv4' | 'v6v4' | 'v6anyv4' | 'v4v6';

/** A redirect's broker list is bounded like gogoc's (§10). */
const MAX_REDIRECT_BROKERS = 50;

/** 2.0.2 -> 2.0.1 -> 2.0.0 -> none: the fallback gogoc runs after `302` (§4). */
export function nextLowerVersion(v: TspVersion): TspVersion | undefined {
  return v === '2.0.2' ? '2.0.1' : v === '2.0.1' ? '2.0.0' : undefined;
}

/** DIGEST-MD5 over PLAIN for `any` (never ANONYMOUS, and never PASSDSS-3DES-1, which we do not implement). */
export function chooseMechanism(method: AuthMethod, offered: readonly string[]): ClientMechanism | undefined {
  const has = (m: ClientMechanism) => offered.includes(m);
  if (method === 'any') return has('DIGEST-MD5') ? 'DIGEST-MD5' : has('PLAIN') ? 'PLAIN' : undefined;
  const want = method.toUpperCase() as ClientMechanism;
  return has(want) ? want : undefined;
}

/** The TUNNEL= and AUTH= values of a CAPABILITY line, upper-cased. Case-insensitive, and a last token without
 *  CR LF still counts (§13.2: where gogoc is fragile). */
export function parseCapability(line: string): { tunnelTypes: string[]; mechanisms: string[] } {
  const tokens = line.split(/\s+/).slice(1).filter(Boolean);
  const values = (key: string) =>
    tokens
      .map((t) => t.split('='))
      .filter(([k, v]) => k!.toUpperCase() === key && v !== undefined && v !== '')
      .map(([, v]) => v!.toUpperCase());
  return { tunnelTypes: values('TUNNEL'), mechanisms: values('AUTH') };
}

/** Whether a line starts with a status code (a bare status where a payload was expected). */
export function isStatusLine(text: string): boolean {
  return /^\d{3,4}(\s|$)/.test(text);
}

/** The first line of a reply, without its line end, NULs or a stray leading NUL. */
export function lineOf(body: Buffer): string {
  const text = stripTrailingNuls(body).toString('latin1').replace(/^\0+/, '');
  const lf = text.indexOf('\n');
  return (lf < 0 ? text : text.slice(0, lf)).replace(/\r$/, '').trim();
}

export function decodeBase64Line(line: string, what: string): string {
  const t = line.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) throw new BrokerError('CLIENT_PROTOCOL', `${what} is not base64: ${t}`);
  return Buffer.from(t, 'base64').toString('utf8');
}

/** The broker list of a redirect (§10): the <address> entries of its <broker> element, IPv6 ones bracketed as
 *  gogoc uses them. Unparseable XML yields an empty list. */
export function redirectList(body: string): string[] {
  const at = body.indexOf('<');
  if (at < 0) return [];
  try {
    const root = parseXml(body.slice(at).replace(/[\r\n\0\s]+$/, ''));
    const broker = root.children.find((c) => c.name === 'broker');
    return (broker?.children ?? [])
      .filter((c) => c.name === 'address' && c.text !== '')
      .slice(0, MAX_REDIRECT_BROKERS)
      .map((c) => ((c.attrs.type ?? '').toLowerCase() === 'ipv6' ? `[${c.text}]` : c.text));
  } catch {
    return [];
  }
}

/** Anything thrown while reading a reply, as the client's error (a CLIENT_ code). */
export function asClientError(e: unknown): BrokerError {
  if (e instanceof BrokerError && e.code.startsWith('CLIENT_')) return e;
  return new BrokerError('CLIENT_PROTOCOL', e instanceof Error ? e.message : String(e), { cause: e });
}

export type OfferReply =
  | { kind: 'offer'; offer: Offer }
  /** Not a 200: the status line and the reply it came in, for the failure. */
  | { kind: 'status'; line: string; body: Buffer };

/** Reads the reply to create: a Content-length message carrying `200 Success` and the offer's XML. A bare status
 *  line where the framed reply belongs is reported as that status (gogoc loops on it as an I/O error). */
export function readOfferReply(body: Buffer): OfferReply {
  const w = splitWhole(body, 'trail');
  if (w.kind === 'noLineEnd' || w.kind === 'notFramed') {
    if (isStatusLine(body.toString('latin1'))) return { kind: 'status', line: lineOf(body), body };
    throw new BrokerError('CLIENT_PROTOCOL', 'the reply to create is not a Content-length message');
  }
  if (w.kind === 'mismatch')
    throw new BrokerError(
      'CLIENT_PROTOCOL',
      `Content-length ${w.length} but ${w.following} bytes follow: the server's framing is wrong`,
    );
  const framed = w.payload.toString('utf8');
  const statusEnd = framed.indexOf('\n');
  const statusText = (statusEnd < 0 ? framed : framed.slice(0, statusEnd)).replace(/\r$/, '');
  if (statusOfLine(statusText) !== 200) return { kind: 'status', line: statusText, body: Buffer.from(framed, 'utf8') };
  const xmlStart = framed.indexOf('<', statusEnd + 1);
  if (statusEnd < 0 || xmlStart < 0) throw new BrokerError('CLIENT_BAD_OFFER', 'the offer carries no XML');
  try {
    return { kind: 'offer', offer: parseOffer(framed.slice(xmlStart)) };
  } catch (e) {
    throw new BrokerError('CLIENT_BAD_OFFER', `unusable offer: ${(e as Error).message}`, { cause: e });
  }
}

/** What a client must check before configuring anything (§13.2 "Offer checks"). */
export function checkOffer(
  offer: Offer,
  request: { mode: RequestedMode; prefixLength?: number },
  transport: 'udp' | 'tcp',
): void {
  const mode = request.mode;
  if (mode !== 'v6anyv4' ? offer.type !== mode : offer.type === 'v4v6')
    throw new BrokerError('CLIENT_BAD_OFFER', `asked for ${mode}, offered ${offer.type}`);
  if (offer.type === 'v6udpv4' && transport === 'tcp')
    throw new BrokerError('CLIENT_BAD_OFFER', 'offered v6udpv4 over TCP: its data path is the TSP UDP flow');
  if (request.prefixLength !== undefined && !offer.prefix)
    throw new BrokerError('CLIENT_BAD_OFFER', 'router mode asked for a prefix; the offer has none');
  if (offer.prefix && offer.prefix.length > 64)
    throw new BrokerError('CLIENT_BAD_OFFER', `delegated prefix length ${offer.prefix.length} is longer than 64`);
  if (offer.keepalive && (offer.keepalive.address === '::' || offer.keepalive.address.startsWith('127.')))
    throw new BrokerError(
      'CLIENT_BAD_OFFER',
      `keepalive address ${offer.keepalive.address} is a placeholder, not an echo target`,
    );
}
