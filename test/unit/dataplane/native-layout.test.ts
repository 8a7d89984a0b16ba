/** The counter layout handshake between the addon and src/dataplane/native-addon.ts: the built addon's names match
 *  ours (no root needed: loading the addon opens nothing), and a mismatched layout is refused with a message
 *  that says what differs and what to do. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isBrokerError } from '../../../src/errors.js';
import {
  CLIENT_COUNTER_NAMES,
  NATIVE_COUNTER_NAMES,
  TUNNEL_RECORD_FIELDS,
  checkLayout,
  loadAddon,
} from '../../../src/dataplane/native-addon.js';

const built = existsSync(new URL('../../../native/build/Release/tspdp.node', import.meta.url));

describe('native addon counter layout', () => {
  it('matches the TypeScript names', { skip: built ? false : 'addon not built' }, () => {
    const addon = loadAddon();
    assert.deepEqual(addon.COUNTER_NAMES, [...NATIVE_COUNTER_NAMES]);
    assert.deepEqual(addon.TUNNEL_RECORD_FIELDS, [...TUNNEL_RECORD_FIELDS]);
    assert.deepEqual(addon.CLIENT_COUNTER_NAMES, [...CLIENT_COUNTER_NAMES]);
    assert.equal(addon.COUNTER_STRIDE, TUNNEL_RECORD_FIELDS.length);
  });

  it('refuses an addon whose counters are in another order, naming both', () => {
    const swapped = [...NATIVE_COUNTER_NAMES];
    [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
    const layout = {
      COUNTER_NAMES: swapped,
      TUNNEL_RECORD_FIELDS: [...TUNNEL_RECORD_FIELDS],
      CLIENT_COUNTER_NAMES: [...CLIENT_COUNTER_NAMES],
    };
    assert.throws(
      () => checkLayout(layout),
      (e: unknown) =>
        isBrokerError(e) &&
        e.code === 'DP_UNAVAILABLE' &&
        /counters \(Counter\) layout does not match/.test(e.message) &&
        /spoofed_source, unknown_endpoint/.test(e.message) &&
        /Rebuild the addon/.test(e.message),
    );
  });

  it('refuses an addon that exports no layout (built before the handshake) or a shorter one', () => {
    const ok = {
      COUNTER_NAMES: [...NATIVE_COUNTER_NAMES],
      TUNNEL_RECORD_FIELDS: [...TUNNEL_RECORD_FIELDS],
      CLIENT_COUNTER_NAMES: [...CLIENT_COUNTER_NAMES],
    };
    checkLayout(ok);
    assert.throws(
      () => checkLayout({ ...ok, CLIENT_COUNTER_NAMES: CLIENT_COUNTER_NAMES.slice(0, 5) }),
      /client counters/,
    );
    assert.throws(
      () => checkLayout({ ...ok, TUNNEL_RECORD_FIELDS: undefined as unknown as string[] }),
      /tunnel record .* addon has \[none\]/,
    );
  });
});
