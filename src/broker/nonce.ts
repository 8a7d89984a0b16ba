/** @module broker/nonce: the server nonces of DIGEST-MD5 sessions, 64 bits from the CSPRNG each, as 16 hex
 *  digits (protocol/sasl/digest-md5.ts buildChallenge). They are cut from a buffer that one randomFillSync fills
 *  with 512 of them at a time: a call to the CSPRNG for each session's 8 bytes was about 1.7 % of a DIGEST-MD5
 *  session's CPU (bench:control's profile). Each byte is handed out once and the buffer never leaves the
 *  process, so a nonce is as unpredictable as one drawn on its own. */

import { randomFillSync } from 'node:crypto';

const NONCE_BYTES = 8;
const pool = Buffer.alloc(512 * NONCE_BYTES);
let next = pool.length;

export function newNonce(): string {
  if (next + NONCE_BYTES > pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  const nonce = pool.toString('hex', next, next + NONCE_BYTES);
  next += NONCE_BYTES;
  return nonce;
}
