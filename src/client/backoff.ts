/** @module client/backoff: how long tspc waits before its next connection attempt (gogoc's rule, §9.5 and
 *  gogoc.conf: "the delay is doubled at every 3 failed consecutive reconnection attempts" and never exceeds
 *  retry_delay_max). Pure. */

/** The wait before the next attempt after `failures` consecutive failed attempts. The first attempt after a
 *  lost tunnel (0 failures) goes at once. */
export function backoffDelayMs(failures: number, retryDelayS: number, retryDelayMaxS: number): number {
  if (failures <= 0) return 0;
  const doublings = Math.floor((failures - 1) / 3);
  return Math.min(retryDelayS * 2 ** Math.min(doublings, 20), retryDelayMaxS) * 1000;
}
