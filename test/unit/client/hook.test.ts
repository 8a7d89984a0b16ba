/** The hook's environment equals what gogoc 1.2 gave its scripts for the same offer, for every recorded
 *  session that set a tunnel up (client_tunnel_environment; TSP_HOME_DIR is a lab path). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gogocPrefix, runHook, tspEnvironment } from '../../../src/client/hook.js';
import { parseOffer } from '../../../src/protocol/xml.js';
import { BrokerError } from '../../../src/errors.js';
import { loadRecordings } from '../../helpers/recordings.js';

for (const r of loadRecordings().filter((x) => x.client_tunnel_environment?.TSP_OPERATION)) {
  test(`TSP_* variables equal gogoc's for ${r.name}`, () => {
    const want = { ...r.client_tunnel_environment! };
    const reply = r.messages.find((m) => m.from === 'server' && m.payload.includes('<tunnel action="info"'))!.payload;
    const offer = parseOffer(reply.slice(reply.indexOf('<')));
    const got = tspEnvironment({
      offer,
      operation: 'TSP_TUNNEL_CREATION',
      hostType: r.client_config.host_type as 'host' | 'router',
      tunName: want.TSP_TUNNEL_INTERFACE!,
      homeInterface: want.TSP_HOME_INTERFACE!,
      homeDir: want.TSP_HOME_DIR!,
    });
    assert.deepEqual(got, want);
  });
}

test("TSP_PREFIX is cut by gogoc's rule (§6.4), whatever form the offer used", () => {
  assert.equal(gogocPrefix('2001:db8:f01::', 56), '2001:0db8:0f01:0000');
  assert.equal(gogocPrefix('2001:0db8:0f01:0000:0000:0000:0000:0000', 48), '2001:0db8:0f01');
  assert.equal(gogocPrefix('2001:db8:f01:ab00::', 64), '2001:0db8:0f01:ab00');
  assert.equal(gogocPrefix('2001:db8:f01::', 60), '2001:0db8:0f01:0000');
});

test('the hook runs with the variables; a failing or missing hook is CLIENT_HOOK with its output', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tspc-hook-'));
  const ok = path.join(dir, 'ok.sh');
  writeFileSync(ok, '#!/bin/sh\necho "$TSP_OPERATION $TSP_TUNNEL_INTERFACE" > "$0.out"\necho done\n', { mode: 0o755 });
  assert.equal(await runHook(ok, { TSP_OPERATION: 'TSP_TUNNEL_CREATION', TSP_TUNNEL_INTERFACE: 'tsptun0' }), 'done');
  assert.equal(readFileSync(`${ok}.out`, 'utf8'), 'TSP_TUNNEL_CREATION tsptun0\n');
  const bad = path.join(dir, 'bad.sh');
  writeFileSync(bad, '#!/bin/sh\necho "no route for you" >&2\nexit 3\n', { mode: 0o755 });
  await assert.rejects(runHook(bad, { TSP_OPERATION: 'TSP_TUNNEL_CREATION' }), (e: unknown) => {
    assert.ok(e instanceof BrokerError && e.code === 'CLIENT_HOOK');
    assert.match(e.message, /exited 3: no route for you/);
    return true;
  });
  await assert.rejects(runHook(path.join(dir, 'missing.sh'), {}), /not found/);
});
