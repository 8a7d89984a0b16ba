/** A fresh broker's /metrics already has a sample for every tsp_* family, at zero: dashboards and alerts on
 *  rate() or absent() see the series from the first scrape, not only after the first event. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { parsePrometheus } from './prometheus.js';

let b: TestBroker;
before(async () => {
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
});
after(async () => {
  await b?.stop();
});

test('every tsp_* family is there at zero before anything happened', async () => {
  const r = await fetch(`http://127.0.0.1:${b.admin!.port}/metrics`);
  assert.equal(r.status, 200);
  const { types, samples } = parsePrometheus(await r.text());
  const families = [...types.keys()].filter((n) => n.startsWith('tsp_'));
  for (const name of ['tsp_sessions_total', 'tsp_auth_failures_total', 'tsp_tunnels_live', 'tsp_dataplane_drops_total'])
    assert.ok(families.includes(name), `${name} is declared`);
  for (const name of families) {
    const mine = samples.filter((s) => s.name === name || s.name.startsWith(`${name}_`));
    assert.ok(mine.length > 0, `${name} has samples on a fresh broker`);
    // the store's own start-up (migrations, generated pools, the restore) has written before any peer spoke
    if (name === 'tsp_store_writes_total' || name === 'tsp_store_checkpoints_total' || name === 'tsp_store_wal_pages')
      continue;
    for (const s of mine) assert.equal(s.value, 0, `${name}${JSON.stringify(s.labels)} starts at 0`);
  }
});
