/** @module broker/events: a small typed event channel. The broker's parts report what happened (a session's
 *  outcome, a tunnel ended); front ends (metrics, the traffic view, tests) subscribe. Listeners run
 *  synchronously and must not throw: one that does is reported to `onListenerError` (the broker logs it) and
 *  never reaches the emitter's caller, so a broken listener cannot fail an accept. */

export class Events<M extends { [K in keyof M]: unknown }> {
  private readonly listeners = new Map<keyof M, Set<(e: never) => void>>();
  /** Where a listener's throw goes. */
  onListenerError: (err: unknown, event: keyof M) => void = () => {};

  on<K extends keyof M>(name: K, fn: (e: M[K]) => void): void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn as (e: never) => void);
  }

  off<K extends keyof M>(name: K, fn: (e: M[K]) => void): void {
    this.listeners.get(name)?.delete(fn as (e: never) => void);
  }

  emit<K extends keyof M>(name: K, e: M[K]): void {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        (fn as (e: M[K]) => void)(e);
      } catch (err) {
        // a listener's failure is its own: the broker's work goes on
        this.onListenerError(err, name);
      }
    }
  }
}
