/** cluster/routes-start: route export as the composition root starts it. Over the memory data plane (what
 *  dataplane.driver 'auto' falls back to without root) there is no device to route to and no packet would be
 *  carried, so a broker with routes.table set starts, says plainly that route export is off, and exports
 *  nothing. (With a TUN device: test/e2e/routes-broker.test.ts.) */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import { startTestBroker } from '../../helpers/broker.js';

test('over the memory data plane, route export logs that it is off and the broker runs without it', async () => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const dataplane = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0 });
  // as 'auto' without root: the configuration allows route export, the data plane that came up has no TUN
  const broker = await startTestBroker(
    { routes: { table: 100 }, dataplane: { driver: 'auto' } },
    { dataplane, log: pino({ level: 'info' }, stream) },
  );
  try {
    const off = lines.map((l) => JSON.parse(l) as { level: number; msg: string; table?: number });
    const said = off.find((l) => l.msg.startsWith('route export off'));
    assert.ok(said, `no "route export off" line in ${lines.join('')}`);
    assert.equal(said.level, 50, 'an error: the operator asked for it');
    assert.equal(said.table, 100);
    assert.ok(!off.some((l) => l.msg.startsWith('route export started')));
  } finally {
    await broker.stop();
  }
});
