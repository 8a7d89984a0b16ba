import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareSeq, decodeUdpHeader, encodeUdpHeader } from '../../../src/protocol/framing/udp.js';
import { framedReply, parseContentLengthLine, splitWhole } from '../../../src/protocol/framing/content-length.js';
import { lineText } from '../../../src/protocol/framing/lines.js';
import { BrokerError } from '../../../src/errors.js';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as BrokerError).code;
  }
  return 'no error';
};

test('UDP header: recording 01 first datagram decodes to seq 0xF0 and timestamp 111', () => {
  const d = Buffer.from('f00000f00000006f56455253494f4e3d322e302e320d0a', 'hex');
  const { header, body } = decodeUdpHeader(d);
  assert.deepEqual(header, { seq: 0xf0, timestamp: 111 });
  assert.equal(body.toString(), 'VERSION=2.0.2\r\n');
  assert.deepEqual(encodeUdpHeader(header), d.subarray(0, 8));
});

test('UDP header: header-only datagram, short datagram, wrong nibble', () => {
  assert.equal(decodeUdpHeader(Buffer.from('f00000f300000336', 'hex')).body.length, 0);
  assert.equal(
    code(() => decodeUdpHeader(Buffer.from('f00000f3000003', 'hex'))),
    'TSP_BAD_FRAME',
  );
  assert.equal(
    code(() => decodeUdpHeader(Buffer.from('600000f300000336', 'hex'))),
    'TSP_BAD_FRAME',
  );
  assert.equal(
    code(() => decodeUdpHeader(Buffer.alloc(0))),
    'TSP_BAD_FRAME',
  );
});

test('UDP header: timestamps are opaque 32-bit values, sequences keep 28 bits', () => {
  const h = encodeUdpHeader({ seq: 0x0fffffff, timestamp: 0xffffffff });
  assert.equal(h.toString('hex'), 'ffffffffffffffff');
  assert.deepEqual(decodeUdpHeader(h).header, { seq: 0x0fffffff, timestamp: 0xffffffff });
});

test('sequence comparison is modulo 2^28', () => {
  assert.equal(compareSeq(0xf1, 0xf0), 1);
  assert.equal(compareSeq(0xf0, 0xf1), -1);
  assert.equal(compareSeq(5, 5), 0);
  assert.equal(compareSeq(0, 0x0fffffff), 1, 'wraps');
  assert.equal(compareSeq(0x0fffffff, 0), -1);
});

test('server Content-length counts the status line inside the body (recording 01: 13 + 488 = 501)', () => {
  const xml = 'x'.repeat(488);
  const r = framedReply(200, 'Success', xml).toString('latin1');
  assert.ok(r.startsWith('Content-length: 501\r\n200 Success\r\n'));
  assert.equal(
    framedReply(303, 'Unsupported tunnel type').toString(),
    'Content-length: 29\r\n303 Unsupported tunnel type\r\n',
  );
  assert.equal(framedReply(200, 'Success').toString(), 'Content-length: 13\r\n200 Success\r\n');
});

test('Content-length header: case-insensitive, optional spaces, bounded', () => {
  assert.equal(parseContentLengthLine('Content-length: 35'), 35);
  assert.equal(parseContentLengthLine('content-LENGTH:35'), 35);
  assert.equal(parseContentLengthLine('  Content-Length :  214  '), 214);
  assert.equal(parseContentLengthLine('Content-type: 35'), undefined);
  assert.equal(parseContentLengthLine('Content-length: -1'), undefined);
  assert.equal(
    code(() => parseContentLengthLine('Content-length: 8193')),
    'TSP_TOO_LARGE',
  );
  assert.equal(
    code(() => parseContentLengthLine('Content-length: 999999999999')),
    'TSP_TOO_LARGE',
  );
  assert.equal(parseContentLengthLine('Content-length: 8192'), 8192);
});

test('a whole framed message must carry exactly N bytes (trailing NULs and line ends tolerated)', () => {
  const payload = (b: Buffer, nuls: 'end' | 'trail' = 'end') => {
    const w = splitWhole(b, nuls);
    return w.kind === 'message' ? w.payload.toString() : w.kind;
  };
  const accept = Buffer.from('Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n');
  assert.equal(payload(accept), '<tunnel action="accept"></tunnel>\r\n');
  assert.equal(payload(Buffer.concat([accept, Buffer.from([0, 0])])).length, 35);
  assert.equal(
    payload(Buffer.from('Content-length: 33\n<tunnel action="accept"></tunnel>\r\n')).length,
    33,
    'LF-only header; N shorter than the rest by a line end',
  );
  assert.equal(payload(Buffer.from('Content-length: 36\r\n<tunnel action="accept"></tunnel>\r\n')), 'mismatch');
  assert.equal(payload(Buffer.from('Content-length: 10\r\n<tunnel action="accept"></tunnel>\r\n')), 'mismatch');
  assert.equal(payload(Buffer.from('<tunnel action="accept"></tunnel>\r\n')), 'notFramed');
  assert.equal(payload(Buffer.from('Content-length: 35')), 'noLineEnd');
  // a NUL inside the trail: the server's datagram reading refuses it, the client's reply reading tolerates it
  const nulInTrail = Buffer.concat([accept, Buffer.from('\0 ')]);
  assert.equal(payload(nulInTrail, 'end'), 'mismatch');
  assert.equal(payload(nulInTrail, 'trail').length, 35);
});

test('line datagrams lose their line end and trailing NULs, never leading NULs', () => {
  assert.equal(lineText(Buffer.from('AUTHENTICATE PLAIN\r\n\0')).toString(), 'AUTHENTICATE PLAIN');
  assert.deepEqual(lineText(Buffer.from('\0bob\0hunter2\r\n')), Buffer.from('\0bob\0hunter2'));
  assert.equal(lineText(Buffer.from('VERSION=2.0.2\n')).toString(), 'VERSION=2.0.2');
  assert.equal(lineText(Buffer.from('')).length, 0);
});
