/** @module cli/heap: one full garbage collection, asked for at the one moment the broker knows it has just
 *  dropped a great deal and V8 does not: after the restore, which reads every live row at once (some 2.5 KB
 *  of garbage a row, 250 MB at 100,000 tunnels). V8 collects its old generation when allocation reaches a
 *  limit set by the last collection, and an idle broker allocates almost nothing (the sweep is O(changes)), so
 *  that garbage would stay resident until traffic came: bench:scale measured 480 MB held for 40 s and more.
 *
 *  Node offers no call for it without --expose-gc on the command line; V8's own flag, set for a moment, gives
 *  a fresh context its `gc` (the way test runners measure leaks). Where that fails, nothing happens. */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Tunnels restored at start-up from which a collection is worth its pause (about 100 ms at 100,000): below,
 *  the restore's garbage is small and goes with the ordinary collections. */
export const RESTORE_COLLECT_MIN_TUNNELS = 10_000;

/** Runs one full collection now; false if V8 would not expose one. */
export function collectGarbage(): boolean {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return false;
    (gc as () => void)();
    return true;
  } catch {
    return false;
  }
}
