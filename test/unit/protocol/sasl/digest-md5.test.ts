import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  buildChallenge,
  buildClientResponse,
  checkRspauth,
  digestSecret,
  parseChallenge,
  parseDirectives,
  parseResponse,
  verifyResponse,
} from '../../../../src/protocol/sasl/digest-md5.js';
import { loadRecordings } from '../../../helpers/recordings.js';

const URI = 'tsp/192.0.2.1:3653';

/** RFC 2831 computed here from the RFC's definitions, independently of the module under test. */
function independent(user: string, realm: string, pass: string, nonce: string, cnonce: string, uri: string) {
  const H = (x: Buffer | string) => createHash('md5').update(x).digest();
  const HEX = (x: Buffer | string) => createHash('md5').update(x).digest('hex');
  const a1 = Buffer.concat([H(`${user}:${realm}:${pass}`), Buffer.from(`:${nonce}:${cnonce}`)]);
  const ha1 = HEX(a1);
  const resp = HEX(`${ha1}:${nonce}:00000001:${cnonce}:auth:${HEX(`AUTHENTICATE:${uri}`)}`);
  const rsp = HEX(`${ha1}:${nonce}:00000001:${cnonce}:auth:${HEX(`:${uri}`)}`);
  return { ha1, resp, rsp };
}

function serverCheck(p: { pass: string; nonce: string; cnonce: string; response: string; quirk?: boolean }) {
  const r = parseResponse(
    `charset=utf-8,username="bob",realm="tsp-fake",nonce="${p.nonce}",nc=00000001,cnonce="${p.cnonce}",digest-uri="${URI}",response=${p.response},qop=auth`,
  );
  return verifyResponse(
    r,
    digestSecret('bob', 'tsp-fake', p.pass),
    { realm: 'tsp-fake', nonce: p.nonce },
    p.quirk ?? false,
  );
}

test('vector A (recording 02): response verifies and rspauth matches', () => {
  assert.equal(digestSecret('bob', 'tsp-fake', 'hunter2').toString('hex'), 'a443489856dae1e0cfb81159a361bed5');
  const v = serverCheck({
    pass: 'hunter2',
    nonce: '762f53ae1752548c',
    cnonce: '1795700979',
    response: '3f0149a293bd1daf8691a68ec1dfd1a5',
  });
  assert.deepEqual(v, { ok: true, rspauth: 'b1b9151af4af7abce17783e1ff136101' });
  assert.equal(
    Buffer.from(`rspauth=${v.ok ? v.rspauth : ''}`).toString('base64'),
    'cnNwYXV0aD1iMWI5MTUxYWY0YWY3YWJjZTE3NzgzZTFmZjEzNjEwMQ==',
  );
});

test('vector B (recording 07)', () => {
  const v = serverCheck({
    pass: 'hunter2',
    nonce: 'be16918c7aab36ba',
    cnonce: '1795701015',
    response: '09d6b028543d2d7e44766853f8ea0ebd',
  });
  assert.deepEqual(v, { ok: true, rspauth: 'dcb1ecf5558e1ef2d5e9aaa132d0bcc6' });
});

test('vector C (recording 04): a wrong password fails', () => {
  const v = serverCheck({
    pass: 'hunter2',
    nonce: '26fa61742497e7f3',
    cnonce: '1795700988',
    response: '161abbe1fd94909032219c3181af762e',
  });
  assert.equal(v.ok, false);
  assert.deepEqual(
    serverCheck({
      pass: 'hunter2',
      nonce: '26fa61742497e7f3',
      cnonce: '1795700988',
      response: '1ae91f97627a2247b360018060211c24',
    }).ok,
    true,
  );
});

/** The 2.0.0 quirk's response for a password, computed here from its definition (docs/protocol.md §5.6):
 *  HA1 = HEX(MD5(X before its first 0x00)). */
function quirkResponse(pass: string, nonce: string, cnonce: string): { response: string; rspauth: string } {
  const HEX = (x: Buffer | string) => createHash('md5').update(x).digest('hex');
  const x = createHash('md5').update(`bob:tsp-fake:${pass}`).digest();
  const ha1 = HEX(x.subarray(0, x.indexOf(0)));
  const kd = (a2: string) => HEX(`${ha1}:${nonce}:00000001:${cnonce}:auth:${HEX(a2)}`);
  return { response: kd(`AUTHENTICATE:${URI}`), rspauth: kd(`:${URI}`) };
}

test('vector D: the 2.0.0 quirk is refused when fewer than 8 bytes of X precede its first zero (here 5)', () => {
  assert.equal(digestSecret('bob', 'tsp-fake', 'pass21').toString('hex'), 'd470241e9d004c2af8bb5c0040817a41');
  const quirk = {
    pass: 'pass21',
    nonce: '762f53ae1752548c',
    cnonce: '1795700979',
    response: 'b670ed582c671d05ac4471ba2557b09f',
  };
  assert.equal(quirkResponse('pass21', quirk.nonce, quirk.cnonce).response, quirk.response);
  assert.equal(serverCheck(quirk).ok, false, 'not without the switch');
  assert.equal(serverCheck({ ...quirk, quirk: true }).ok, false, 'not with it either: 5 bytes are too weak');
  const correct = { ...quirk, response: '4f00e67582d590dcfbea66c27262a21c' };
  assert.deepEqual(serverCheck(correct), { ok: true, rspauth: '485d36b3f5c625bafcd2d3ae54b29089' });
  assert.deepEqual(serverCheck({ ...correct, quirk: true }), { ok: true, rspauth: '485d36b3f5c625bafcd2d3ae54b29089' });
});

test('a secret that starts with 0x00 never lets a response made without the password in', () => {
  // X = MD5(bob:tsp-fake:pw8) = 00239add…: its quirk HA1 is HEX(MD5("")), which anyone can compute
  assert.equal(digestSecret('bob', 'tsp-fake', 'pw8').toString('hex'), '00239add5dbc91973d511986765eb808');
  const nonce = '0123456789abcdef';
  const cnonce = 'c0ffee';
  const HEX = (x: Buffer | string) => createHash('md5').update(x).digest('hex');
  const ha1 = HEX('');
  const response = HEX(`${ha1}:${nonce}:00000001:${cnonce}:auth:${HEX(`AUTHENTICATE:${URI}`)}`);
  assert.equal(serverCheck({ pass: 'pw8', nonce, cnonce, response, quirk: true }).ok, false);
  assert.equal(serverCheck({ pass: 'pw8', nonce, cnonce, response }).ok, false);
});

test('the 2.0.0 quirk passes with the switch on when 8 or more bytes of X precede its first zero', () => {
  // X = MD5(bob:tsp-fake:pw14) = f2d36ebe2f70895fa4 00 …: 9 bytes before the zero
  assert.equal(digestSecret('bob', 'tsp-fake', 'pw14').toString('hex'), 'f2d36ebe2f70895fa400f3729a5de8e8');
  const nonce = '762f53ae1752548c';
  const cnonce = '1795700979';
  const q = quirkResponse('pw14', nonce, cnonce);
  assert.equal(serverCheck({ pass: 'pw14', nonce, cnonce, response: q.response }).ok, false, 'off by default');
  assert.deepEqual(serverCheck({ pass: 'pw14', nonce, cnonce, response: q.response, quirk: true }), {
    ok: true,
    rspauth: q.rspauth,
  });
  assert.equal(serverCheck({ pass: 'pw15', nonce, cnonce, response: q.response, quirk: true }).ok, false);
});

test('a vector computed independently in this test verifies, for another user, realm and uri', () => {
  const x = independent('alice@example', 'broker.example', 'correct horse', 'a1b2c3d4e5f60718', 'xyz', 'tsp/hexos');
  const r = parseResponse(
    `username="alice@example", realm="broker.example", nonce="a1b2c3d4e5f60718", cnonce="xyz", nc=00000001, qop=auth, digest-uri="tsp/hexos", response=${x.resp}`,
  );
  const v = verifyResponse(
    r,
    digestSecret('alice@example', 'broker.example', 'correct horse'),
    { realm: 'broker.example', nonce: 'a1b2c3d4e5f60718' },
    false,
  );
  assert.deepEqual(v, { ok: true, rspauth: x.rsp });
});

test('verification refuses a wrong nonce, realm, nc, qop or authzid', () => {
  const x = independent('bob', 'tsp-fake', 'hunter2', 'n1', 'c', URI);
  const base = {
    username: 'bob',
    realm: 'tsp-fake',
    nonce: 'n1',
    cnonce: 'c',
    nc: '00000001',
    qop: 'auth',
    digestUri: URI,
    response: x.resp,
  };
  const secret = digestSecret('bob', 'tsp-fake', 'hunter2');
  const exp = { realm: 'tsp-fake', nonce: 'n1' };
  assert.equal(verifyResponse(base, secret, exp, false).ok, true);
  assert.equal(verifyResponse({ ...base, nonce: 'n2' }, secret, exp, false).ok, false);
  assert.equal(verifyResponse({ ...base, realm: 'other' }, secret, exp, false).ok, false);
  assert.equal(verifyResponse({ ...base, nc: '00000002' }, secret, exp, false).ok, false);
  assert.equal(verifyResponse({ ...base, qop: 'auth-int' }, secret, exp, false).ok, false);
  assert.equal(verifyResponse({ ...base, authzid: 'root' }, secret, exp, false).ok, false);
});

test('the challenge is exactly the form gogoc reads', () => {
  assert.equal(
    buildChallenge('tsp-fake', '762f53ae1752548c'),
    'realm="tsp-fake",nonce="762f53ae1752548c",qop="auth",algorithm=md5-sess,charset=utf-8',
  );
});

test('directive parsing tolerates spaces, quotes, order and escapes; rejects junk', () => {
  const d = parseDirectives(' b = "x\\"y" ,a=1,  c="" ');
  assert.deepEqual(
    [...d.entries()],
    [
      ['b', 'x"y'],
      ['a', '1'],
      ['c', ''],
    ],
  );
  assert.throws(() => parseDirectives('a="unterminated'), /unterminated/);
  assert.throws(() => parseDirectives('novalue'), /malformed/);
  assert.throws(() => parseDirectives('a=1,a=2'), /repeated/);
  assert.throws(() => parseResponse('username="bob"'), /lacks/);
});

test('client side: our response equals what gogoc sent in recording 02, and rspauth is checked', () => {
  const rec = loadRecordings().find((r) => r.name.startsWith('02'))!;
  const challengeWire = rec.messages[3]!.payload.trim();
  const ch = parseChallenge(Buffer.from(challengeWire, 'base64').toString());
  const { text, expectedRspauth } = buildClientResponse({
    username: 'bob',
    password: 'hunter2',
    challenge: ch,
    cnonce: '1795700979',
    digestUri: URI,
  });
  assert.equal(`${Buffer.from(text).toString('base64')}\r\n`, rec.messages[4]!.payload);
  assert.equal(checkRspauth(Buffer.from(rec.messages[5]!.payload.trim(), 'base64').toString(), expectedRspauth), true);
  assert.equal(checkRspauth('rspauth=00000000000000000000000000000000', expectedRspauth), false);
  assert.equal(checkRspauth('200 Success', expectedRspauth), false, 'a missing rspauth is a failure, not a crash');
});

test('client side: a tolerant challenge reader (spaces, order, qop list, no charset)', () => {
  const c = parseChallenge('nonce="abc", qop="auth-int,auth", realm="r"');
  assert.deepEqual(c, { realm: 'r', nonce: 'abc', qop: 'auth', charset: 'utf-8' });
  assert.throws(() => parseChallenge('realm="r",qop="auth"'), /nonce/);
  assert.throws(() => parseChallenge('nonce="n",qop="auth-conf"'), /qop/);
});

test('client side: a nonce with quotes and backslashes is escaped in the response and verifies (fuzz: sasl)', () => {
  const nonce = 'a"b\\c,d=e';
  const ch = parseChallenge(`realm="tsp-fake",nonce="a\\"b\\\\c,d=e",qop="auth",charset=utf-8`);
  assert.equal(ch.nonce, nonce);
  const { text, expectedRspauth } = buildClientResponse({
    username: 'bob',
    password: 'hunter2',
    challenge: ch,
    cnonce: '1795700979',
    digestUri: URI,
  });
  const r = parseResponse(text);
  assert.equal(r.nonce, nonce);
  assert.equal(r.cnonce, '1795700979');
  const v = verifyResponse(r, digestSecret('bob', 'tsp-fake', 'hunter2'), { realm: 'tsp-fake', nonce }, false);
  assert.ok(v.ok);
  assert.equal(checkRspauth(`rspauth=${v.rspauth}`, expectedRspauth), true);
});

test('client side: a challenge with a nonce or realm over 128 characters, or a charset other than utf-8, is refused (fuzz: client)', () => {
  const long = 'n'.repeat(129);
  assert.throws(() => parseChallenge(`nonce="${long}",qop="auth"`), /longer than 128/);
  assert.throws(() => parseChallenge(`realm="${long}",nonce="abc",qop="auth"`), /longer than 128/);
  assert.throws(() => parseChallenge('nonce="abc",qop="auth",charset=iso-8859-1'), /not utf-8/);
  assert.throws(() => parseChallenge('nonce="abc",qop="auth",charset="utf-8,x=y"'), /not utf-8/);
  assert.equal(parseChallenge(`nonce="${'n'.repeat(128)}",qop="auth",charset=UTF-8`).nonce.length, 128);
});
