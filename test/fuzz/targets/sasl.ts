/** @module test/fuzz/targets/sasl: the SASL parsers (src/protocol/sasl/plain.ts, digest-md5.ts).
 *
 *  The input is split on NUL into fields. The parsers get the whole input: parsePlain (bytes), and
 *  parseDirectives, parseResponse, parseChallenge, checkRspauth (text); a parsed response is verified against a
 *  secret. Then both sides are checked against each other with the fields as values: the PLAIN line our client
 *  encodes parses back to the same credentials, and for any challenge our server builds (a realm and nonce of
 *  token characters, as configured and generated), the response our client builds for any username and
 *  password verifies on the server, and the rspauth the server returns satisfies the client.
 *
 *  And a stranger's challenge with any nonce and realm, quoted as RFC 2831 says: our client's response reads
 *  back on a server with the same values and verifies.
 *
 *  Invariants: only BrokerError is thrown; the round trips hold (except that the server refuses the 2.0.0
 *  truncated-HA1 form when fewer than QUIRK200_MIN_PREFIX bytes of X precede its zero byte, and must). */

import {
  buildChallenge,
  buildClientResponse,
  checkRspauth,
  digestSecret,
  parseChallenge,
  parseDirectives,
  parseResponse,
  verifyResponse,
} from '../../../src/protocol/sasl/digest-md5.js';
import { encodePlain, parsePlain } from '../../../src/protocol/sasl/plain.js';
import { QUIRK200_MIN_PREFIX } from '../../../src/protocol/constants.js';
import { InvariantError, allowBrokerErrors, errorFeature, messageShape, call, type Target } from '../engine.js';

function fieldsOf(b: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++)
    if (i === b.length || b[i] === 0) {
      out.push(b.subarray(start, i).toString('utf8'));
      start = i + 1;
    }
  return out;
}

const token = (s: string, fallback: string): string => s.replace(/[^A-Za-z0-9._-]/g, '') || fallback;

function exec(input: Uint8Array): string[] {
  const features: string[] = [];
  const shape = (what: string, r: { ok: true; value: unknown } | { ok: false; error: Error }) =>
    features.push(r.ok ? `${what}:ok` : `${what}:${errorFeature(r.error)}`);
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  const text = b.toString('utf8');

  shape(
    'plain',
    allowBrokerErrors('parsePlain', () => parsePlain(b)),
  );
  shape(
    'directives',
    allowBrokerErrors('parseDirectives', () => parseDirectives(text)),
  );
  const resp = allowBrokerErrors('parseResponse', () => parseResponse(text));
  shape('response', resp);
  if (resp.ok) {
    const v = call('verifyResponse', () =>
      verifyResponse(
        resp.value,
        digestSecret('bob', 'tsp-fake', 'hunter2'),
        { realm: 'tsp-fake', nonce: resp.value.nonce },
        true,
      ),
    );
    features.push(`verify:${v.ok ? 'ok' : messageShape(v.reason)}`);
  }
  const ch = allowBrokerErrors('parseChallenge', () => parseChallenge(text));
  shape('challenge', ch);
  features.push(`rspauth:${call('checkRspauth', () => checkRspauth(text, 'dcb1ecf5558e1ef2d5e9aaa132d0bcc6'))}`);

  // both sides against each other, with the input's fields as values
  const [username = '', password = '', realmIn = '', nonceIn = '', cnonce = '1795701015', uri = '192.0.2.1:3653'] =
    fieldsOf(b);
  // PLAIN: what encodePlain sends (as a line: the server strips the CR LF) parses back to the same credentials
  if (
    username &&
    !/[\0\r\n]/.test(username + password) &&
    Buffer.byteLength(username) <= 255 &&
    Buffer.byteLength(password) <= 255
  ) {
    const line = encodePlain({ username, password });
    const got = allowBrokerErrors('parsePlain(encodePlain)', () => parsePlain(line.subarray(0, line.length - 2)));
    if (!got.ok) throw new InvariantError(`parsePlain rejects encodePlain's line: ${got.error.message}`, 'parsePlain');
    if (got.value.username !== username || got.value.password !== password)
      throw new InvariantError('PLAIN round trip changes the credentials', 'parsePlain');
    features.push('plain-roundtrip');
  }
  // DIGEST-MD5: our server's challenge, our client's response, our server's check, our client's check
  const realm = token(realmIn, 'tsp-fake').slice(0, 34); // a configured realm has at most 34 characters
  const nonce = token(nonceIn, '762f53ae1752548c').slice(0, 64);
  const challengeText = buildChallenge(realm, nonce);
  const challenge = allowBrokerErrors('parseChallenge(buildChallenge)', () => parseChallenge(challengeText));
  if (!challenge.ok)
    throw new InvariantError(`parseChallenge rejects buildChallenge: ${challenge.error.message}`, 'parseChallenge');
  if (!username) return features; // DIGEST-MD5 needs a username
  // a stranger's challenge, any nonce and realm properly quoted: our client's response still reads back with
  // the same values on a server and verifies there
  const q = (v: string) => v.replace(/["\\]/g, (c) => `\\${c}`);
  const hostile = allowBrokerErrors('parseChallenge(hostile)', () =>
    parseChallenge(`realm="${q(realmIn)}",nonce="${q(nonceIn || 'n')}",qop="auth",charset=utf-8`),
  );
  shape('hostile', hostile);
  if (hostile.ok) {
    const c = call('buildClientResponse', () =>
      buildClientResponse({ username, password, challenge: hostile.value, cnonce: '1795701015', digestUri: 'tsp/x' }),
    );
    const back = allowBrokerErrors('parseResponse(hostile)', () => parseResponse(c.text));
    if (!back.ok)
      throw new InvariantError(
        `our response to a quoted challenge is unreadable: ${back.error.message}`,
        'parseResponse',
      );
    if (back.value.nonce !== hostile.value.nonce || back.value.realm !== hostile.value.realm)
      throw new InvariantError('nonce or realm changed on the way back', 'buildClientResponse');
    const secret = digestSecret(username, hostile.value.realm, password);
    const v = verifyResponse(back.value, secret, { realm: hostile.value.realm, nonce: hostile.value.nonce }, false);
    if (!v.ok)
      throw new InvariantError(`a server refuses our response to a quoted challenge: ${v.reason}`, 'verifyResponse');
  }
  for (const quirk200 of [false, true]) {
    const client = call('buildClientResponse', () =>
      buildClientResponse({
        username,
        password,
        challenge: challenge.value,
        cnonce: token(cnonce, '1795701015'),
        digestUri: `tsp/${uri.replace(/[^A-Za-z0-9.:[\]-]/g, '') || '192.0.2.1:3653'}`,
        quirk200,
      }),
    );
    const parsed = allowBrokerErrors('parseResponse(buildClientResponse)', () => parseResponse(client.text));
    if (!parsed.ok)
      throw new InvariantError(`parseResponse rejects buildClientResponse: ${parsed.error.message}`, 'parseResponse');
    if (parsed.value.username !== username)
      throw new InvariantError('DIGEST-MD5 username changed on the wire', 'parseResponse');
    const secret = digestSecret(username, realm, password);
    const v = call('verifyResponse', () => verifyResponse(parsed.value, secret, { realm, nonce }, quirk200));
    // 2.0.0's truncated HA1 (the client uses it whenever X holds a 0x00) is refused by the server when fewer
    // than QUIRK200_MIN_PREFIX bytes precede the zero: that form is too weak to accept (docs/protocol.md §5.6)
    const zero = secret.indexOf(0);
    const weak = quirk200 && zero >= 0 && zero < QUIRK200_MIN_PREFIX;
    if (weak) {
      if (v.ok)
        throw new InvariantError('the server accepts a truncated HA1 shorter than the minimum', 'verifyResponse');
      features.push('digest-weak-refused');
      continue;
    }
    if (!v.ok) throw new InvariantError(`our server refuses our client's response: ${v.reason}`, 'verifyResponse');
    if (!checkRspauth(`rspauth=${v.rspauth}`, client.expectedRspauth))
      throw new InvariantError("our client refuses our server's rspauth", 'checkRspauth');
    features.push(`digest-roundtrip:${quirk200}:${secret.includes(0)}`);
  }
  return features;
}

const DICTIONARY = [
  'charset=utf-8,',
  'username="bob",',
  'realm="tsp-fake",',
  'nonce="762f53ae1752548c",',
  'nc=00000001,',
  'cnonce="1795700979",',
  'digest-uri="tsp/192.0.2.1:3653",',
  'response=3f0149a293bd1daf8691a68ec1dfd1a5,',
  'qop=auth',
  'qop="auth,auth-int"',
  'algorithm=md5-sess',
  'authzid="bob"',
  'rspauth=',
  '="',
  '\\"',
  '\0bob\0hunter2',
  'Ym9i',
  '====',
].map((s) => Buffer.from(s, 'latin1'));

export const saslTarget: Target = {
  name: 'sasl',
  description: 'PLAIN and DIGEST-MD5 parsers, and our client and server against each other',
  exec,
  dictionary: DICTIONARY,
  maxLength: 4096,
};
