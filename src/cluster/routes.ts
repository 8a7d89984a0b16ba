/** @module cluster/routes: route export. While a tunnel is live on this node, each prefix it makes this node
 *  responsible for (cluster/routes-of.ts) is a kernel route `dev <TUN> table <routes.table> proto
 *  <routes.protocol>`; a routing daemon reads that table and announces what is in it (docs/cluster.md), so the
 *  network sends a tunnel's addresses to whichever node carries it.
 *
 *    start(registry) ─ follow 'established'/'ended' ─ flush our tag in our table (both families)
 *                    ─ one `ip -force -batch -` child (routes-batch.ts) ─ every live tunnel's routes written
 *    'established' ─► `route replace <prefix> dev <tun> table T proto P` for each of its prefixes not yet held
 *    'ended'       ─► `route del ...` for each of its prefixes no other live tunnel holds
 *    child died    ─► logged with why, counted; after a pause (doubling to a minute while it keeps failing):
 *                     flush and write everything again (the kernel's table may hold anything by then)
 *    close()       ─► stop following, the child ends, our routes are flushed: a stopped node stops attracting
 *                     traffic, and the daemon withdraws them
 *
 *  A change costs one write of a line or two to a pipe, whatever the number of tunnels; only a start and a
 *  restart of the child write all of them. Prefixes are reference-counted, so two live tunnels that share one
 *  (an account's link block) keep it until the last ends. A kill -9 of the broker needs none of this: the TUN
 *  device goes with the process, and the kernel removes every route through it. */

import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import type { Events } from '../broker/events.js';
import type { TunnelEventMap } from '../broker/tunnels.js';
import type { TunnelRecord } from '../store/types.js';
import { IpBatch } from './routes-batch.js';
import { routesOf } from './routes-of.js';

/** The first pause before a dead child is replaced, doubled at each failure in a row up to the longest. */
const RESTART_DELAY_MS = 1000;
const RESTART_DELAY_MAX_MS = 60_000;
/** A hung `ip` must not hang start() or close() (the flushes), nor a sync. */
const COMMAND_TIMEOUT_MS = 30_000;
/** Route commands written to the child per stream write at a (re)sync. */
const LINES_PER_WRITE = 4096;
/** Live tunnels taken in at a start between two turns of the event loop. */
const TUNNELS_PER_TURN = 2048;
/** Failed commands logged one by one per minute; the counter has them all. */
const FAILURE_LOGS_PER_MINUTE = 10;

export interface RouteExporterOptions {
  table: number;
  protocol: number;
  /** The data plane's TUN device. */
  device: string;
  /** The length of the link blocks the allocator hands out (broker/pools.ts linkLeaseLength). */
  linkLeaseLen: number;
  log: Logger;
  /** Run `ip` inside this named network namespace (tests); the current one if absent. */
  netns?: string;
  /** The first pause before a dead child is replaced (default RESTART_DELAY_MS). */
  restartDelayMs?: number;
}

/** What the exporter follows: the tunnel registry (broker/tunnels.ts). */
export interface RouteSource {
  readonly events: Events<TunnelEventMap>;
  find(pred: (t: TunnelRecord) => boolean): TunnelRecord[];
  has(id: number): boolean;
}

export interface RouteExportStats {
  /** Prefixes held as routes in the table (each once, however many tunnels share it). */
  exported: number;
  /** Route commands that failed, and `ip` runs (flushes, the batch child) that could not do their work. */
  failures: number;
  /** Times the batch child died and was replaced. */
  restarts: number;
}

export class RouteExporter {
  private readonly byTunnel = new Map<number, readonly string[]>();
  /** prefix -> how many live tunnels route it */
  private readonly held = new Map<string, number>();
  private batch: IpBatch | undefined;
  private source: RouteSource | undefined;
  private closed = false;
  private failureCount = 0;
  private restartCount = 0;
  private failuresInRow = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Settles when the pending restart has run (or was cancelled by close). */
  private pendingRestart: Promise<void> | undefined;
  private cancelRestart: (() => void) | undefined;
  private failureLog = { minute: 0, logged: 0 };
  /** Commands of this turn of the event loop, written to the child in one go at the next (writeQueued). */
  private queued: string[] = [];
  private writeScheduled = false;
  /** While a resync writes its snapshot: the queue waits for it. */
  private queueHeld = false;

  constructor(private readonly options: RouteExporterOptions) {}

  get stats(): RouteExportStats {
    return { exported: this.held.size, failures: this.failureCount, restarts: this.restartCount };
  }

  /** The batch child's pid while it runs (tests, logs). */
  get pid(): number | undefined {
    return this.batch?.alive ? this.batch.pid : undefined;
  }

  /** Follows the registry from now on, and installs every tunnel it has live (call it after its restore).
   *  Resolves when every route is written to the `ip` child, not when the kernel has them all (settled()). */
  async start(source: RouteSource): Promise<void> {
    this.source = source;
    source.events.on('established', this.onEstablished);
    source.events.on('ended', this.onEnded);
    // in slices, so a start with 100,000 tunnels never holds the event loop for long; a tunnel that ends
    // meanwhile is no longer live when its turn comes, and one established meanwhile came by its event
    const live = source.find(() => true);
    for (let i = 0; i < live.length; i += TUNNELS_PER_TURN) {
      for (const t of live.slice(i, i + TUNNELS_PER_TURN))
        if (source.has(t.id) && !this.byTunnel.has(t.id)) this.hold(t);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await this.resync();
    this.options.log.info(
      {
        table: this.options.table,
        protocol: this.options.protocol,
        device: this.options.device,
        routes: this.held.size,
      },
      'route export started: the live tunnels’ routes are on their way to the kernel',
    );
  }

  /** Resolves when every route change made so far is in the kernel (tests and benchmarks); waits through a
   *  restart of the child. */
  async settled(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.pendingRestart;
      if (this.closed) return;
      this.writeQueued();
      const batch = this.batch;
      if (!batch?.alive) continue;
      try {
        return await batch.sync(COMMAND_TIMEOUT_MS);
      } catch {
        // it died meanwhile: the restart it scheduled rewrites everything; wait for that
      }
    }
    throw new Error('route export: ip -batch keeps failing');
  }

  /** Stops following the registry and removes our routes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.source?.events.off('established', this.onEstablished);
    this.source?.events.off('ended', this.onEnded);
    clearTimeout(this.restartTimer);
    this.cancelRestart?.();
    await this.batch?.end(COMMAND_TIMEOUT_MS);
    await this.flush().catch((err: Error) => {
      this.failureCount++;
      this.options.log.error({ err: err.message }, 'route export: could not remove our routes at stop');
    });
  }

  private readonly onEstablished = ({ record }: TunnelEventMap['established']): void => {
    this.write(this.hold(record).map((p) => this.command('replace', p)));
  };

  private readonly onEnded = ({ record }: TunnelEventMap['ended']): void => {
    this.write(this.release(record.id).map((p) => this.command('del', p)));
  };

  /** Records a live tunnel's prefixes; returns those that were not held before. */
  private hold(t: TunnelRecord): string[] {
    if (this.byTunnel.has(t.id)) this.release(t.id);
    const prefixes = routesOf(t, this.options.linkLeaseLen);
    this.byTunnel.set(t.id, prefixes);
    const added: string[] = [];
    for (const p of prefixes) {
      const n = this.held.get(p) ?? 0;
      this.held.set(p, n + 1);
      if (n === 0) added.push(p);
    }
    return added;
  }

  /** Forgets a tunnel's prefixes; returns those no live tunnel holds any more. */
  private release(id: number): string[] {
    const prefixes = this.byTunnel.get(id) ?? [];
    this.byTunnel.delete(id);
    const gone: string[] = [];
    for (const p of prefixes) {
      const n = this.held.get(p) ?? 0;
      if (n <= 1) {
        this.held.delete(p);
        gone.push(p);
      } else this.held.set(p, n - 1);
    }
    return gone;
  }

  private command(verb: 'replace' | 'del', prefix: string): string {
    const o = this.options;
    return `route ${verb} ${prefix} dev ${o.device} table ${o.table} proto ${o.protocol}\n`;
  }

  /** Queues commands for the child, written once per turn of the event loop (one pipe write for a burst of
   *  changes). While no child runs, the maps alone change, and the next resync writes them. */
  private write(commands: string[]): void {
    if (commands.length === 0 || !this.batch?.alive) return; // a resync to come writes the maps
    this.queued.push(...commands);
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => this.writeQueued());
  }

  private writeQueued(): void {
    this.writeScheduled = false;
    if (this.queueHeld) return; // the resync writes it when its snapshot is out
    if (this.queued.length > 0 && this.batch?.alive) this.batch.write(this.queued.join(''));
    this.queued = [];
  }

  /** Flushes our routes, starts a child and writes every held prefix. On failure, schedules another try. */
  private async resync(): Promise<void> {
    try {
      await this.flush();
    } catch (err) {
      this.failureCount++;
      this.options.log.error({ err: (err as Error).message }, 'route export: flush failed; trying again');
      return this.scheduleRestart();
    }
    if (this.closed) return;
    const batch = new IpBatch(this.options.netns, {
      failed: (command, error) => this.onCommandFailed(command, error),
      exited: (why) => this.onExited(batch, why),
    });
    this.batch = batch;
    // Every held prefix, a slice per turn of the event loop. Changes meanwhile wait in the queue until the
    // last slice is written: applied after the whole snapshot, they leave the table as the maps say.
    this.queued = []; // what they said is in the maps, so in the snapshot
    this.queueHeld = true;
    const all = [...this.held.keys()];
    for (let i = 0; i < all.length && batch.alive && !this.closed; i += LINES_PER_WRITE) {
      batch.write(
        all
          .slice(i, i + LINES_PER_WRITE)
          .map((p) => this.command('replace', p))
          .join(''),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.queueHeld = false;
    this.writeQueued();
    // Not awaited: the kernel takes seconds for 100,000 routes, and the broker need not wait for them to
    // start listening. A child that took everything is a success: the next failure starts from the shortest
    // pause again.
    const writtenAt = Date.now();
    void batch.sync(COMMAND_TIMEOUT_MS * 10).then(
      () => {
        this.failuresInRow = 0;
        this.options.log.info({ routes: all.length, ms: Date.now() - writtenAt }, 'route export: table in sync');
      },
      () => {}, // it died or hung: onExited (or the next change's failure) says so
    );
  }

  private onCommandFailed(command: string | undefined, error: string): void {
    this.failureCount++;
    const minute = Math.floor(Date.now() / 60_000);
    if (this.failureLog.minute !== minute) this.failureLog = { minute, logged: 0 };
    if (this.failureLog.logged++ < FAILURE_LOGS_PER_MINUTE)
      this.options.log.warn({ command: command?.trim(), error }, 'route export: route command failed');
  }

  private onExited(batch: IpBatch, why: string): void {
    if (this.batch !== batch || this.closed) return;
    this.batch = undefined;
    this.restartCount++;
    this.failureCount++;
    this.options.log.warn({ why }, 'route export: ip -batch exited; restarting it and resyncing the table');
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.closed) return;
    const first = this.options.restartDelayMs ?? RESTART_DELAY_MS;
    const delay = Math.min(RESTART_DELAY_MAX_MS, first * 2 ** Math.min(this.failuresInRow++, 16));
    const pending: Promise<void> = new Promise<void>((resolve) => {
      this.cancelRestart = resolve;
      this.restartTimer = setTimeout(() => {
        void this.resync().then(() => {
          // a resync that failed has scheduled the next one: settled() waits for that instead
          if (this.pendingRestart === pending) this.pendingRestart = undefined;
          resolve();
        });
      }, delay);
    });
    this.pendingRestart = pending;
  }

  /** Removes every route of our tag from our table, both families (an `ip -batch` line cannot name a family
   *  for a flush, so these are commands of their own). A table that does not exist yet has nothing to flush. */
  private async flush(): Promise<void> {
    const o = this.options;
    for (const family of ['-6', '-4']) {
      const args = ['route', 'flush', 'table', String(o.table), 'proto', String(o.protocol)];
      await runIp(o.netns, [family, ...args]);
    }
  }
}

function runIp(netns: string | undefined, args: string[]): Promise<void> {
  const full = netns === undefined ? args : ['-n', netns, ...args];
  return new Promise((resolve, reject) => {
    execFile('ip', full, { timeout: COMMAND_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (!error || /FIB table does not exist/.test(stderr)) return resolve();
      reject(new Error(`ip ${full.join(' ')}: ${stderr.trim() || error.message}`));
    });
  });
}
