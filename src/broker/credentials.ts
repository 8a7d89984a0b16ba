/** @module broker/credentials: how passwords become what the store keeps: an argon2id hash (PLAIN and web
 *  login) and the DIGEST-MD5 secret X = MD5(user:realm:pass) for the configured realm. Never the password. */

import { randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { digestSecret } from '../protocol/sasl/digest-md5.js';
import { BrokerError } from '../errors.js';

/** argon2id with the library's defaults (m=19 MiB, t=2, p=1: OWASP's minimum recommendation). */
export async function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: 2 /* Argon2id */ });
}

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
  } catch {
    return false; // a malformed stored hash fails closed
  }
}

export interface StoredCredentials {
  passwordHash: string;
  /** Null, with digestRealm, for a web-only account: no DIGEST-MD5 secret at all. */
  digestHa1: string | null;
  digestRealm: string | null;
}

export interface CredentialOptions {
  /** Keep only the argon2id hash: the account signs in to the web UI and API, never over TSP with DIGEST-MD5. */
  webOnly?: boolean;
}

/** Length and content rules for new passwords (the wire carries them as UTF-8, at most 255 bytes in PLAIN). */
export function checkPassword(password: string): void {
  if (password.length < 8) throw new BrokerError('API_BAD_REQUEST', 'password must be at least 8 characters');
  if (Buffer.byteLength(password, 'utf8') > 255)
    throw new BrokerError('API_BAD_REQUEST', 'password must be at most 255 bytes');
  if (/[\0\r\n]/.test(password))
    throw new BrokerError('API_BAD_REQUEST', 'password must not contain NUL or line breaks');
}

/** Checks the password rules, then derives what the store keeps. */
export async function makeCredentials(
  username: string,
  password: string,
  realm: string,
  opts: CredentialOptions = {},
): Promise<StoredCredentials> {
  checkPassword(password);
  return deriveCredentials(username, password, realm, opts);
}

/** Derives what the store keeps without the rules for new passwords (test fixtures, imports). */
export async function deriveCredentials(
  username: string,
  password: string,
  realm: string,
  opts: CredentialOptions = {},
): Promise<StoredCredentials> {
  const passwordHash = await hashPassword(password);
  if (opts.webOnly) return { passwordHash, digestHa1: null, digestRealm: null };
  return { passwordHash, digestHa1: digestSecret(username, realm, password).toString('hex'), digestRealm: realm };
}

let dummyHash: Promise<string> | undefined;
/** An argon2id hash of a random password, made once: an unknown or disabled user is verified against it, so
 *  the answer takes as long as for a real account and timing does not tell which usernames exist. */
export function dummyPasswordHash(): Promise<string> {
  return (dummyHash ??= hashPassword(randomBytes(18).toString('base64')));
}
