/** When a TSP offer is acknowledged (docs/architecture.md, "State and restart"): an anonymous one at its commit,
 *  before the fsync; an account's, and every accept, after the fsync. Counted by the SQLite group committer
 *  (Store.writeStats().provisional), through a real broker on a real SQLite file. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { runSession } from '../../helpers/tsp.js';

const open: TestBroker[] = [];
after(async () => {
  for (const b of open) await b.stop().catch(() => {});
});

test("an anonymous offer is acknowledged at its commit; an account's offer and every accept wait for the disk", async () => {
  const b = await startTestBroker({});
  open.push(b);
  await b.addUser('bob', 'hunter22');
  const bob = { mechanism: 'DIGEST-MD5' as const, username: 'bob', password: 'hunter22' };
  const stats = () => {
    const w = b.store.writeStats?.();
    assert.ok(w, 'a SQLite file store counts its writes');
    return w;
  };
  const session = async (auth: Parameters<typeof runSession>[0]['auth'], prefixLength?: number) => {
    const before = stats();
    const s = await runSession({
      transport: 'udp',
      port: b.ports.udp,
      auth,
      ...(prefixLength === undefined ? {} : { prefixLength }),
    });
    assert.equal(s.createStatus, 200);
    s.udp?.close();
    const after = stats();
    return { provisional: after.provisional! - before.provisional!, writes: after.writes - before.writes };
  };

  const anon = await session({ mechanism: 'ANONYMOUS' });
  assert.equal(anon.provisional, 1, 'an anonymous offer: its lease is its session’s alone');
  assert.ok(anon.writes >= 2, 'the offer and the accept were written');

  const first = await session(bob, 56);
  assert.equal(first.provisional, 0, "an account's first offer: its new blocks are told only once on disk");
  const again = await session(bob, 56);
  assert.equal(again.provisional, 0, "an account's offer of the blocks it holds waits as well");
});
