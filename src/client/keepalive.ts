/** @module client/keepalive: ICMPv6 echo (ICMP for v4v6) through the tunnel to the offer's keepalive address, once per offered
 *  interval, each waiting `timeoutMs` for its reply; `misses` unanswered in a row declare the server dead
 *  (docs/protocol.md §9.1: gogoc sends one per interval, waits 5 s, gives up after 3).
 *
 *    start --interval--> probe --reply--> (misses = 0, rtt) --interval--> probe ...
 *                              --timeout--> misses += 1 --misses reached--> onDead (once; the loop stops)
 *
 *  The echo itself is a Probe: ping(8) from iputils by default (Node has no raw ICMPv6 socket; one process per
 *  interval is cheap next to an interval of seconds), a fake in unit tests. */

import { execFile } from 'node:child_process';
import { sleep, systemClock, type Clock } from '../clock.js';

/** Sends one echo request and resolves with the round-trip time in ms, or undefined without a reply in time. */
export type Probe = (timeoutMs: number) => Promise<number | undefined>;

/** One `ping` through the tunnel device (`-6`, or `-4` to a v4v6 tunnel's inner IPv4): gogoc's 16-byte payload,
 *  bound to the TUN so the echo goes through the tunnel whatever the routing table says. */
export function pingProbe(target: string, tunName: string): Probe {
  return (timeoutMs) =>
    new Promise((resolve) => {
      const waitS = Math.max(1, Math.ceil(timeoutMs / 1000));
      execFile(
        'ping',
        [
          target.includes(':') ? '-6' : '-4',
          '-n',
          '-q',
          '-c',
          '1',
          '-s',
          '16',
          '-W',
          String(waitS),
          '-I',
          tunName,
          target,
        ],
        { timeout: timeoutMs + 2_000 },
        (error, stdout) => {
          if (error) return resolve(undefined);
          const m = /= [\d.]+\/([\d.]+)\//.exec(stdout); // rtt min/avg/max/mdev = 0.051/0.051/0.051/0.000 ms
          resolve(m ? Number(m[1]) : 0);
        },
      );
    });
}

export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
  misses: number;
  probe: Probe;
  onReply?: (rttMs: number) => void;
  onMiss?: (missesInARow: number) => void;
  /** Called once, when `misses` echoes in a row went unanswered. */
  onDead: () => void;
  /** Paces the echoes and stamps replies (default systemClock). */
  clock?: Clock;
}

export class Keepalive {
  private running = false;
  private wake: (() => void) | undefined;
  private readonly clock: Clock;
  missesInARow = 0;
  sent = 0;
  lastRttMs: number | undefined;
  lastReplyAtMs: number | undefined;

  constructor(private readonly opt: KeepaliveOptions) {
    this.clock = opt.clock ?? systemClock;
  }

  /** The first echo goes one interval after start (the tunnel was just negotiated). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  /** Idempotent; an echo in flight finishes unseen. */
  stop(): void {
    this.running = false;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    const s = sleep(this.clock, ms);
    this.wake = s.wake;
    return s.done;
  }

  private async loop(): Promise<void> {
    // the interval counts from one echo to the next, not from a reply (or a timeout) to the next echo
    let nextAt = this.clock.now() + this.opt.intervalMs;
    while (this.running) {
      await this.sleep(nextAt - this.clock.now());
      if (!this.running) return;
      nextAt = this.clock.now() + this.opt.intervalMs;
      this.sent++;
      const rtt = await this.opt.probe(this.opt.timeoutMs);
      if (!this.running) return;
      if (rtt !== undefined) {
        this.missesInARow = 0;
        this.lastRttMs = rtt;
        this.lastReplyAtMs = this.clock.now();
        this.opt.onReply?.(rtt);
      } else {
        this.missesInARow++;
        this.opt.onMiss?.(this.missesInARow);
        if (this.missesInARow >= this.opt.misses) {
          this.running = false;
          this.opt.onDead();
          return;
        }
      }
    }
  }
}
