/** @module test/fuzz/targets/dns-reply: what our DNS update client reads from the server (src/dns/): the reply
 *  reader (parseMessage, readName) and the TSIG check of the reply (verifyReply).
 *
 *  Invariants: parseMessage throws nothing but an Error whose message starts with "DNS"; every record it
 *  returns lies inside the input; verifyReply on what it parsed returns a reason or null and never throws, and
 *  never accepts a reply the fuzzer could not have signed (the key is one the inputs never carry a MAC of). */

import { createHash } from 'node:crypto';
import { parseMessage } from '../../../src/dns/wire.js';
import { verifyReply, type TsigKey } from '../../../src/dns/tsig.js';
import { InvariantError, call, type Target } from '../engine.js';

const KEY: TsigKey = {
  name: 'tsp-broker',
  algorithm: 'hmac-sha256',
  secret: createHash('sha256').update('k').digest(),
};
const REQUEST_MAC = Buffer.alloc(32, 0x5a);

function exec(input: Uint8Array): string[] {
  const msg = Buffer.from(input.buffer, input.byteOffset, input.length);
  let parsed;
  try {
    parsed = parseMessage(msg);
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith('DNS')) throw new InvariantError(`parseMessage threw ${e}`);
    return [`parse:${e.message.split(' ').slice(0, 4).join(' ')}`];
  }
  for (const r of parsed.records)
    if (r.start < 12 || r.rdataOffset + r.rdata.length > msg.length)
      throw new InvariantError('a record lies outside the message', 'parseMessage');
  const why = call('verifyReply', () => verifyReply(msg, parsed, KEY, REQUEST_MAC, 1_700_000_000));
  if (why === null) throw new InvariantError('a reply no one signed verified', 'verifyReply');
  return [`records:${Math.min(parsed.records.length, 8)}`, `verify:${why.split(' ').slice(0, 3).join(' ')}`];
}

const DICTIONARY = [
  [0xc0, 0x0c],
  [0x00, 0xfa, 0x00, 0xff],
  [0x00, 0x02, 0x00, 0x01],
  [0x00, 0x06, 0x00, 0x01],
  [0x0b, ...Buffer.from('hmac-sha256')],
  [0x0a, ...Buffer.from('tsp-broker')],
  [0x00, 0x20],
  [0xa8, 0x00],
].map((b) => Uint8Array.from(b));

export const dnsReplyTarget: Target = {
  name: 'dns-reply',
  description: 'the DNS update client reading a server reply: parseMessage and the TSIG check (verifyReply)',
  exec,
  dictionary: DICTIONARY,
  maxLength: 1024,
};
