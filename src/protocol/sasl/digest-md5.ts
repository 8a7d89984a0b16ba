/** @module protocol/sasl/digest-md5: DIGEST-MD5 (RFC 2831) as TSP profiles it, server and client sides.
 *  Pure computation over strings and bytes (node:crypto hashes only; the nonce comes from the caller).
 *  docs/protocol.md §5.4–§5.6 has the wire rules and the vectors A–D the tests check. */

import { createHash, timingSafeEqual } from 'node:crypto';
import { RemoteProtocolError } from '../../errors.js';
import { QUIRK200_MIN_PREFIX } from '../constants.js';

const md5 = (b: Buffer | string): Buffer => createHash('md5').update(b).digest();
const hex = (b: Buffer): string => b.toString('hex');

/** X = MD5(username:realm:password): the 16-byte storable credential (password-equivalent). */
export function digestSecret(username: string, realm: string, password: string): Buffer {
  return md5(Buffer.from(`${username}:${realm}:${password}`, 'utf8'));
}

/** The challenge exactly as gogoc needs it: no spaces, this order, `charset` present (gogoc crashes without
 *  it), qop a single `auth` (§5.4). */
export function buildChallenge(realm: string, nonce: string): string {
  return `realm="${realm}",nonce="${nonce}",qop="auth",algorithm=md5-sess,charset=utf-8`;
}

/** Parses `key=value` or `key="value"` pairs separated by commas, tolerating spaces after commas and around
 *  `=`, any key order, and backslash escapes inside quotes. Keys are lower-cased. Throws TSP_BAD_FRAME on
 *  syntax it cannot read. */
export function parseDirectives(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = text.length;
  const skipSpace = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  };
  while (i < n) {
    skipSpace();
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (i >= n) break;
    const keyStart = i;
    while (i < n && text[i] !== '=' && text[i] !== ',') i++;
    const key = text.slice(keyStart, i).trim().toLowerCase();
    if (!key || text[i] !== '=')
      throw new RemoteProtocolError(
        'TSP_BAD_FRAME',
        `malformed DIGEST-MD5 directive near "${text.slice(keyStart, keyStart + 20)}"`,
      );
    i++;
    skipSpace();
    let value = '';
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i]!;
        if (c === '\\' && i + 1 < n) {
          value += text[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new RemoteProtocolError('TSP_BAD_FRAME', `unterminated quoted value for ${key}`);
    } else {
      const vs = i;
      while (i < n && text[i] !== ',') i++;
      value = text.slice(vs, i).trim();
    }
    if (out.has(key)) throw new RemoteProtocolError('TSP_BAD_FRAME', `directive ${key} repeated`);
    out.set(key, value);
  }
  return out;
}

export interface DigestResponse {
  username: string;
  realm: string;
  nonce: string;
  cnonce: string;
  nc: string;
  qop: string;
  digestUri: string;
  response: string;
  authzid?: string;
}

/** Reads the client's response directives. Throws TSP_BAD_FRAME when a required one is missing. */
export function parseResponse(text: string): DigestResponse {
  const d = parseDirectives(text);
  const need = (k: string): string => {
    const v = d.get(k);
    if (v === undefined || v === '') throw new RemoteProtocolError('TSP_BAD_FRAME', `DIGEST-MD5 response lacks ${k}`);
    return v;
  };
  const r: DigestResponse = {
    username: need('username'),
    realm: d.get('realm') ?? '',
    nonce: need('nonce'),
    cnonce: need('cnonce'),
    nc: need('nc'),
    qop: d.get('qop') ?? 'auth',
    digestUri: need('digest-uri'),
    response: need('response').toLowerCase(),
  };
  const authzid = d.get('authzid');
  if (authzid !== undefined) r.authzid = authzid;
  return r;
}

/** HA1 for secret X, nonce and cnonce. With `truncated`, the 2.0.0 compatibility form (§5.6 "bug 1455"):
 *  HEX(H(X up to its first 0x00)), or undefined when X has no 0x00 (then the quirk does not apply). */
export function computeHa1(x: Buffer, nonce: string, cnonce: string, truncated = false): string | undefined {
  if (truncated) {
    const z = x.indexOf(0);
    return z < 0 ? undefined : hex(md5(x.subarray(0, z)));
  }
  return hex(md5(Buffer.concat([x, Buffer.from(`:${nonce}:${cnonce}`, 'utf8')])));
}

function kd(ha1: string, nonce: string, nc: string, cnonce: string, qop: string, a2: string): string {
  return hex(md5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${hex(md5(a2))}`));
}

/** The client's `response` value for a given HA1. */
export function responseValue(
  ha1: string,
  r: Pick<DigestResponse, 'nonce' | 'nc' | 'cnonce' | 'qop' | 'digestUri'>,
): string {
  return kd(ha1, r.nonce, r.nc, r.cnonce, r.qop, `AUTHENTICATE:${r.digestUri}`);
}

/** The server's `rspauth` value for a given HA1 (A2 without the method). */
export function rspauthValue(
  ha1: string,
  r: Pick<DigestResponse, 'nonce' | 'nc' | 'cnonce' | 'qop' | 'digestUri'>,
): string {
  return kd(ha1, r.nonce, r.nc, r.cnonce, r.qop, `:${r.digestUri}`);
}

function equalHex(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'latin1');
  const bb = Buffer.from(b, 'latin1');
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

export type VerifyResult = { ok: true; rspauth: string } | { ok: false; reason: string };

/** Server-side check of a response against the stored X. `expected` is what this session sent; `quirk200`
 *  enables the 2.0.0 form (the operator switched it on and the negotiated version is 2.0.0), which is then
 *  accepted only when at least QUIRK200_MIN_PREFIX bytes of X precede its first 0x00. The rspauth is
 *  computed with the HA1 that matched. */
export function verifyResponse(
  r: DigestResponse,
  x: Buffer,
  expected: { realm: string; nonce: string },
  quirk200: boolean,
): VerifyResult {
  if (r.nonce !== expected.nonce) return { ok: false, reason: 'nonce does not match the challenge' };
  if (r.realm !== '' && r.realm !== expected.realm) return { ok: false, reason: 'realm does not match the challenge' };
  if (r.nc !== '00000001') return { ok: false, reason: `nc ${r.nc} (the nonce is single use)` };
  if (r.qop !== 'auth') return { ok: false, reason: `qop ${r.qop} (only auth is offered)` };
  if (r.authzid !== undefined && r.authzid !== '' && r.authzid !== r.username)
    return { ok: false, reason: 'authzid differs from username' };
  const candidates = [computeHa1(x, r.nonce, r.cnonce)];
  // the truncated form is worth only the bytes of X before its first 0x00: refuse it below the minimum
  const zero = x.indexOf(0);
  if (quirk200 && zero >= QUIRK200_MIN_PREFIX) candidates.push(computeHa1(x, r.nonce, r.cnonce, true));
  for (const ha1 of candidates) {
    if (ha1 !== undefined && equalHex(responseValue(ha1, r), r.response))
      return { ok: true, rspauth: rspauthValue(ha1, r) };
  }
  return { ok: false, reason: 'response does not match' };
}

// ---- client side (tspc) ----

export interface Challenge {
  realm: string;
  nonce: string;
  qop: string;
  charset: string;
}

/** Longest nonce or realm our client echoes: the response must stay one UDP datagram (≤ 1472 bytes with its
 *  header) even when every character needs an escape. Ours are 16 and at most 34 characters. */
export const MAX_CHALLENGE_VALUE = 128;

/** Tolerant challenge reader for our client: spaces, quotes and any order; a missing charset means utf-8;
 *  a qop list containing `auth` selects `auth` (docs/protocol.md §13.2). Refuses a charset other than utf-8
 *  (RFC 2831 allows no other) and a nonce or realm longer than MAX_CHALLENGE_VALUE. */
export function parseChallenge(text: string): Challenge {
  const d = parseDirectives(text);
  const nonce = d.get('nonce');
  if (!nonce) throw new RemoteProtocolError('TSP_BAD_FRAME', 'DIGEST-MD5 challenge lacks a nonce');
  const realm = d.get('realm') ?? '';
  if (nonce.length > MAX_CHALLENGE_VALUE || realm.length > MAX_CHALLENGE_VALUE)
    throw new RemoteProtocolError('TSP_BAD_FRAME', `challenge nonce or realm longer than ${MAX_CHALLENGE_VALUE}`);
  const charset = d.get('charset') ?? 'utf-8';
  if (charset.toLowerCase() !== 'utf-8')
    throw new RemoteProtocolError('TSP_BAD_FRAME', `challenge charset ${charset.slice(0, 20)} is not utf-8`);
  const qops = (d.get('qop') ?? 'auth').split(',').map((s) => s.trim());
  if (!qops.includes('auth'))
    throw new RemoteProtocolError('TSP_BAD_FRAME', `challenge offers no qop=auth (${qops.join(',')})`);
  return { realm, nonce, qop: 'auth', charset };
}

function quote(s: string): string {
  return s.replace(/["\\]/g, (c) => `\\${c}`);
}

/** The response line in gogoc's exact field order (§5.4), plus the rspauth we must then see. */
export function buildClientResponse(p: {
  username: string;
  password: string;
  challenge: Challenge;
  cnonce: string;
  digestUri: string;
  quirk200?: boolean;
}): { text: string; expectedRspauth: string } {
  const realm = p.challenge.realm;
  const x = digestSecret(p.username, realm, p.password);
  const r = { nonce: p.challenge.nonce, nc: '00000001', cnonce: p.cnonce, qop: 'auth', digestUri: p.digestUri };
  const ha1 = (p.quirk200 && computeHa1(x, r.nonce, r.cnonce, true)) || computeHa1(x, r.nonce, r.cnonce)!;
  const response = responseValue(ha1, r);
  // every quoted value escaped: the server chose the nonce, and a `"` in it must not end the string early
  const text =
    `charset=${p.challenge.charset},username="${quote(p.username)}",realm="${quote(realm)}",` +
    `nonce="${quote(r.nonce)}",nc=${r.nc},cnonce="${quote(r.cnonce)}",digest-uri="${quote(r.digestUri)}",` +
    `response=${response},qop=auth`;
  return { text, expectedRspauth: rspauthValue(ha1, r) };
}

/** Checks the server's `rspauth=<hex>` line in constant time. A missing rspauth is a failure, not a crash. */
export function checkRspauth(text: string, expected: string): boolean {
  const m = /rspauth\s*=\s*"?([0-9a-fA-F]{32})"?/.exec(text);
  return m !== null && equalHex(m[1]!.toLowerCase(), expected);
}
