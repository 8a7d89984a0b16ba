/** @module test/helpers/gogoc-replay: replays a recorded gogoc 1.2 session (docs/protocol.md §14) against a
 *  running broker over real UDP or TCP sockets, checking that each reply is what that client needs next
 *  (test/interop/gogoc-replay.test.ts on the in-memory data plane, gogoc-replay-ebpf.test.ts behind the eBPF
 *  programs). DIGEST sessions need the broker started with the recorded nonce (recordedNonce). The client's
 *  declared IPv4 is rewritten to 127.0.0.1 (the test's real address). */
import assert from 'node:assert/strict';
import type { TestBroker } from './broker.js';
import { RawTcp, RawUdp, eventually } from './clients.js';
import { checkCapability, checkChallenge, checkFramedReply, checkOfferXml } from './gogoc-check.js';
import { payloadBytes, type RecordedMessage, type Recording } from './recordings.js';

/** The declared client IPv4 becomes the real one, with the Content-length fixed to match. */
function rewriteCreate(payload: Buffer): Buffer {
  const text = payload.toString('latin1');
  if (!text.startsWith('Content-length:') || !text.includes('action="create"')) return payload;
  const body = text
    .slice(text.indexOf('\n') + 1)
    .replace('<address type="ipv4">192.0.2.2</address>', '<address type="ipv4">127.0.0.1</address>');
  return Buffer.from(`Content-length: ${Buffer.byteLength(body, 'latin1')}\r\n${body}`, 'latin1');
}

export function recordedNonce(rec: Recording): string | undefined {
  const i = rec.messages.findIndex((m) => m.from === 'client' && m.payload.startsWith('AUTHENTICATE DIGEST-MD5'));
  if (i < 0) return undefined;
  const challenge = rec.messages.slice(i).find((m) => m.from === 'server');
  return /nonce="([^"]+)"/.exec(Buffer.from(challenge!.payload.trim(), 'base64').toString('latin1'))?.[1];
}

/** Our reply must be what the recorded reply was to gogoc: identical where values are deterministic, and
 *  structurally right (strict checker) for offers. */
function assertLike(recorded: string, ours: string, where: string): void {
  if (recorded.startsWith('CAPABILITY')) {
    assert.deepEqual(checkCapability(ours), [], where);
    assert.equal(ours, recorded, `${where}: CAPABILITY`);
  } else if (recorded.startsWith('Content-length:')) {
    const want = checkFramedReply(recorded);
    const got = checkFramedReply(ours);
    assert.deepEqual(got.problems, [], `${where}: framing`);
    assert.equal(got.status, want.status, `${where}: status`);
    if (want.status === 200 && want.body.startsWith('<tunnel')) {
      assert.deepEqual(checkOfferXml(got.body), [], `${where}: offer`);
      const type = (s: string) => /<tunnel [^>]*type="([^"]+)"/.exec(s)?.[1];
      assert.equal(type(got.body), type(want.body), `${where}: offered type`);
      assert.match(got.body, /<keepalive interval="\d+">/, `${where}: keepalive`);
    }
  } else {
    if (
      /^[A-Za-z0-9+/]+=*\r\n$/.test(recorded) &&
      Buffer.from(recorded.trim(), 'base64').toString('latin1').startsWith('realm=')
    )
      assert.deepEqual(checkChallenge(Buffer.from(ours.trim(), 'base64').toString('latin1')), [], where);
    assert.equal(ours, recorded, where);
  }
}

async function replayUdp(rec: Recording, b: TestBroker): Promise<void> {
  const msgs = rec.messages;
  let sock: RawUdp | undefined;
  let skipSegment = false;
  const ours = new Map<number, Buffer>();
  try {
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.from !== 'client') continue;
      const seq = Number(m.header!.seq) >>> 0;
      if (m.payload.startsWith('VERSION=') && !m.attempt) {
        sock?.close(); // gogoc opens a new socket for every VERSION try (§4)
        sock = await RawUdp.open();
        skipSegment = false;
        ours.clear();
      }
      if (skipSegment || !sock) continue;
      const h = Buffer.alloc(8);
      h.writeUInt32BE(seq, 0);
      h.writeUInt32BE(m.header!.timestamp >>> 0, 4);
      const datagram = Buffer.concat([h, rewriteCreate(payloadBytes(m))]);
      const reply = await sock.request(datagram, b.ports.udp);
      const where = `${rec.name} message ${i} (${JSON.stringify(m.payload.slice(0, 30))})`;
      assert.ok(reply, `${where}: a reply`);
      assert.equal(reply.readUInt32BE(0), seq, `${where}: the reply echoes the sequence`);
      if (m.attempt) {
        // a retransmission gets the cached reply, not a second execution
        assert.deepEqual(reply.subarray(8), ours.get(seq)!.subarray(8), `${where}: cached reply`);
        continue;
      }
      assert.equal(reply.readUInt32BE(4), m.header!.timestamp, `${where}: the reply echoes the timestamp`);
      ours.set(seq, reply);
      const recorded = msgs
        .slice(i + 1)
        .find((x): x is RecordedMessage => x.from === 'server' && x.header?.seq === m.header!.seq);
      assert.ok(recorded, `${where}: recording has the reply`);
      const oursText = reply.subarray(8).toString('latin1');
      if (recorded.payload.startsWith('302') && oursText.startsWith('CAPABILITY')) {
        // the lab broker refused this version to exercise fallback; we support it. The client left this socket.
        assert.deepEqual(checkCapability(oursText), []);
        skipSegment = true;
        continue;
      }
      assertLike(recorded.payload, oursText, where);
    }
  } finally {
    sock?.close();
  }
}

async function replayTcp(rec: Recording, b: TestBroker): Promise<void> {
  const conn = await RawTcp.connect(b.ports.tcp);
  try {
    const msgs = rec.messages;
    let seen = 0; // bytes of our replies already matched
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.from !== 'client') continue;
      conn.write(rewriteCreate(payloadBytes(m)));
      const expected: string[] = [];
      for (let j = i + 1; j < msgs.length && msgs[j]!.from === 'server'; j++) expected.push(msgs[j]!.payload);
      const where = `${rec.name} message ${i} (${JSON.stringify(m.payload.slice(0, 30))})`;
      if (expected.length === 0) {
        // gogoc reads nothing here (PLAIN's first line, the accept): we must write nothing
        await new Promise((r) => setTimeout(r, 350));
        assert.equal(conn.text().length, seen, `${where}: no reply`);
        continue;
      }
      for (const want of expected) {
        const total = seen + Buffer.byteLength(want, 'latin1');
        const framed = want.startsWith('Content-length:');
        const text = await conn.waitFor((t) => {
          if (!framed) return t.length >= total;
          const got = /^Content-length: (\d+)\r\n/.exec(t.slice(seen));
          return !!got && t.length - seen >= got[0].length + Number(got[1]);
        }, 3000);
        let oursLen = Buffer.byteLength(want, 'latin1');
        if (framed) {
          const got = /^Content-length: (\d+)\r\n/.exec(text.slice(seen));
          assert.ok(got, `${where}: framed reply`);
          oursLen = got[0].length + Number(got[1]);
        }
        assertLike(want, text.slice(seen, seen + oursLen), where);
        seen += oursLen;
      }
      if (expected.length === 2 && expected[1] === '200 Success\r\n') {
        // DIGEST over TCP: rspauth and 200 must be separate writes, or gogoc hangs in recv() (recording 07)
        const rspauthChunk = conn.chunks.find((c) =>
          c.toString('latin1').startsWith(Buffer.from('rspauth=').toString('base64').slice(0, 8)),
        );
        assert.ok(
          rspauthChunk && !rspauthChunk.toString('latin1').includes('200 Success'),
          `${where}: rspauth written alone`,
        );
      }
    }
    assert.equal(conn.ended, false, 'the broker keeps the connection open after the accept');
  } finally {
    conn.close();
  }
}

/** Replays `rec` on `b` and checks the store afterwards: one established tunnel of the offered type when the
 *  client accepted, none otherwise. */
export async function replay(rec: Recording, b: TestBroker): Promise<void> {
  const transport = rec.messages[0]!.transport;
  if (transport === 'udp') await replayUdp(rec, b);
  else await replayTcp(rec, b);
  const accepted = rec.messages.some((m) => m.from === 'client' && m.payload.includes('action="accept"'));
  const live = await b.store.listTunnels({ state: 'established' });
  if (accepted) {
    const offered = /<tunnel action="info" type="([^"]+)"/.exec(
      rec.messages.find((m) => m.from === 'server' && m.payload.includes('action="info"'))!.payload,
    )![1];
    assert.equal(live.items.length, 1, 'one established tunnel in the store');
    assert.equal(live.items[0]!.type, offered, 'of the type offered');
    assert.equal(
      live.items[0]!.username,
      rec.client_config.auth_method === 'anonymous' ? null : rec.client_config.userid,
    );
  } else {
    assert.equal(live.items.length, 0, 'no tunnel without an accept');
  }
  if (transport === 'tcp')
    assert.ok(await eventually(() => b.sessionCounts().total === 0), 'TCP session gone once the client closed');
}
