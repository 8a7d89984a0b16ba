/** DIGEST-MD5 server nonces: 16 hex digits, never repeated, across many refills of the buffer they are cut
 *  from, and not a fixed pattern (a buffer handed out again without a refill would repeat the first 512). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNonce } from '../../../src/broker/nonce.js';

test('nonces are 16 hex digits and distinct across 40 refills of their buffer', () => {
  const nonces = Array.from({ length: 512 * 40 + 7 }, () => newNonce());
  for (const n of nonces) assert.match(n, /^[0-9a-f]{16}$/);
  assert.equal(new Set(nonces).size, nonces.length);
  // every hex digit turns up at every position (a zero-filled or constant buffer would not)
  for (let i = 0; i < 16; i++) assert.equal(new Set(nonces.map((n) => n[i])).size, 16, `digit ${i} varies`);
});
