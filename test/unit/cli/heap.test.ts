/** cli/heap: the broker can ask V8 for a full collection after its restore, without --expose-gc, and doing
 *  so leaves no `gc` behind in contexts made later. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { collectGarbage } from '../../../src/cli/heap.js';

test('collectGarbage runs a collection that frees what nothing holds, and exposes nothing after', async () => {
  const ref = (() => new WeakRef({ big: new Array(1000).fill(0) }))();
  await new Promise((resolve) => setImmediate(resolve)); // a WeakRef holds its target until the job ends
  assert.equal(collectGarbage(), true);
  assert.equal(ref.deref(), undefined, 'the unreachable object was collected');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
