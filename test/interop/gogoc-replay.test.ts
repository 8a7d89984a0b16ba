/** Replays every recorded gogoc 1.2 session (../shared/interop/gogoc-1.2, docs/protocol.md §14) against a
 *  running broker over real UDP or TCP sockets on loopback, and checks that each reply is what that client
 *  needs next: status, echoed header, exact Content-length, a well-formed offer. DIGEST sessions run with the
 *  recorded realm and nonce pinned, so the recorded responses verify and our rspauth must equal the recorded
 *  one byte for byte. The client's declared IPv4 is rewritten to 127.0.0.1 (the test's real address). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadRecordings, type Recording } from '../helpers/recordings.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { recordedNonce, replay } from '../helpers/gogoc-replay.js';

const recordings = loadRecordings();
assert.equal(recordings.length, 13, 'all 13 recorded sessions are present');

const brokers: TestBroker[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

async function brokerFor(rec: Recording): Promise<TestBroker> {
  const nonce = recordedNonce(rec);
  const b = await startTestBroker({}, nonce ? { newNonce: () => nonce } : {});
  brokers.push(b);
  await b.addUser('bob', 'hunter2');
  return b;
}

for (const rec of recordings) {
  test(`replay ${rec.name}`, async () => {
    await replay(rec, await brokerFor(rec));
  });
}
