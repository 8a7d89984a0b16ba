/** config/routes: the `routes` section (route export for a cluster node, docs/cluster.md): off by default, a
 *  table of its own and a protocol tag nobody else uses, and never over the memory data plane. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig, parseConfig } from '../../../src/config/schema.js';
import { BrokerError } from '../../../src/errors.js';

function problems(raw: unknown): string {
  try {
    parseConfig(raw);
    return '';
  } catch (e) {
    assert.ok(e instanceof BrokerError);
    assert.equal(e.code, 'CFG_INVALID');
    return e.message;
  }
}

test('route export is off by default, with protocol tag 150', () => {
  assert.deepEqual(defaultConfig().routes, { table: null, protocol: 150 });
  assert.deepEqual(parseConfig({ routes: { table: 4242, protocol: 201 } }).routes, { table: 4242, protocol: 201 });
  assert.equal(parseConfig({ routes: { table: 2 ** 32 - 1 } }).routes.table, 2 ** 32 - 1);
});

test('routes.table: 1 to 2^32-1, not the kernel’s default, main or local table', () => {
  for (const table of [0, 253, 254, 255, 2 ** 32, 1.5, -1, '100'])
    assert.match(problems({ routes: { table } }), /^routes\.table: /m, `table ${table}`);
});

test('routes.protocol: not the kernel’s tags (0 to 4) nor a routing daemon’s (BIRD 12, FRR 186 to 198)', () => {
  for (const protocol of [0, 1, 4, 12, 186, 196, 198, 256, null])
    assert.match(problems({ routes: { table: 100, protocol } }), /^routes\.protocol: /m, `protocol ${protocol}`);
  assert.match(problems({ routes: { tabel: 100 } }), /^routes\.tabel: unknown key$/m);
});

test('routes.table with the memory data plane is refused: there is no device to route to', () => {
  assert.match(
    problems({ routes: { table: 100 }, dataplane: { driver: 'memory' } }),
    /^routes\.table: needs a data plane with a TUN device/m,
  );
  assert.equal(parseConfig({ routes: { table: 100 }, dataplane: { driver: 'native' } }).routes.table, 100);
});
