/** @module protocol/sasl/plain: PLAIN (RFC 4616) as TSP clients send it: raw, not base64, NUL-separated
 *  (docs/protocol.md §5.3). Pure. */

import { RemoteProtocolError } from '../../errors.js';

export interface PlainCredentials {
  username: string;
  password: string;
}

const MAX_FIELD_BYTES = 255;

/** Parses `[authzid]\0authcid\0passwd` (the line end already removed). Three fields are
 *  [authzid, authcid, passwd], two are [authcid, passwd]. A line without NUL is tried as base64. */
export function parsePlain(raw: Buffer): PlainCredentials {
  let bytes = raw;
  if (!bytes.includes(0)) {
    const text = bytes.toString('latin1').trim();
    if (/^[A-Za-z0-9+/]+=*$/.test(text)) bytes = Buffer.from(text, 'base64');
  }
  const fields = splitNul(bytes);
  let authzid = '';
  let authcid: Buffer;
  let passwd: Buffer;
  if (fields.length === 3) [authzid, authcid, passwd] = [fields[0]!.toString('utf8'), fields[1]!, fields[2]!];
  else if (fields.length === 2) [authcid, passwd] = [fields[0]!, fields[1]!];
  else
    throw new RemoteProtocolError('TSP_BAD_FRAME', `PLAIN credentials have ${fields.length} fields, expected 2 or 3`);
  if (authcid.length === 0 || authcid.length > MAX_FIELD_BYTES || passwd.length > MAX_FIELD_BYTES)
    throw new RemoteProtocolError('TSP_BAD_FRAME', 'PLAIN field empty or longer than 255 bytes');
  const username = authcid.toString('utf8');
  if (authzid !== '' && authzid !== username)
    throw new RemoteProtocolError('AUTH_FAILED', 'PLAIN authzid differs from authcid');
  return { username, password: passwd.toString('utf8') };
}

function splitNul(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0) {
      out.push(b.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** The client's credentials line: `\0user\0pass\r\n`, as gogoc sends it. */
export function encodePlain(c: PlainCredentials): Buffer {
  return Buffer.concat([
    Buffer.from([0]),
    Buffer.from(c.username, 'utf8'),
    Buffer.from([0]),
    Buffer.from(c.password, 'utf8'),
    Buffer.from('\r\n'),
  ]);
}
