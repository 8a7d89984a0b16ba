/** @module test/helpers/netns: network namespace topologies for tests and benchmarks, with guaranteed cleanup
 *  (the wireguard-go tests/netns.sh idea, as a TypeScript API).
 *
 *  const topo = await Topology.create(t);            // t: a node:test TestContext, or { after } from node:test
 *  const a = await topo.namespace('client');         // "tspt-client-<pid>-<n>", loopback up
 *  const b = await topo.namespace('broker');
 *  await topo.link(a, ['192.0.2.2/24'], b, ['192.0.2.1/24']);   // veth pair "to-broker" <-> "to-client"
 *  await a.ip('route', 'add', 'default', 'via', '192.0.2.1');
 *  const ping = await a.exec('ping', ['-c', '1', '-W', '2', '192.0.2.1']);
 *  const server = a.spawn('node', ['server.mjs']);   // killed at cleanup
 *
 *  Cleanup (processes killed, namespaces deleted, which takes their interfaces) runs from the registered
 *  `after` hook, and from process 'exit' and SIGINT/SIGTERM as a last resort. Names carry the creating pid, so
 *  Topology.create also removes namespaces left behind by test processes that are gone (kill -9). Namespaces
 *  are created inside, never touching the root namespace's interfaces: other tests can run at the same time.
 *  Only documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) belong in tests. */

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** Every command a test runs through this helper is bounded: a hung command fails the test, not the run. */
const DEFAULT_TIMEOUT_MS = 30_000;
const NAME_PREFIX = 'tspt';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string | Buffer;
}

/** Runs a command (not in any namespace); resolves with its exit code, never rejects on non-zero. */
export function execCommand(command: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      command,
      args,
      { timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr) || (error && code === null ? error.message : ''),
        });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** As execCommand, but rejects with the command line and its stderr unless it exits 0. */
export async function runCommand(command: string, args: readonly string[], options: ExecOptions = {}): Promise<string> {
  const r = await execCommand(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A process running inside a namespace until kill() or cleanup. */
export class NetnsProcess {
  /** Everything written to stdout and stderr so far. */
  stdout = '';
  stderr = '';
  /** Resolves with the exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(null));
    });
  }

  /** Resolves once `text` has appeared on stdout; rejects after `timeoutMs` or if the process exits first. */
  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!this.stdout.includes(text)) {
      if (exited) throw new Error(`process exited before printing "${text}": ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${text}"; stderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves when it is gone. */
  async kill(graceMs = 2_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface InterfaceStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
}

/** One network namespace created by a Topology. */
export class Netns {
  constructor(
    readonly name: string,
    private readonly topology: Topology,
  ) {}

  /** Runs a command inside the namespace; resolves with its exit code (never rejects on non-zero). */
  exec(command: string, args: readonly string[] = [], options?: ExecOptions): Promise<ExecResult> {
    return execCommand('ip', ['netns', 'exec', this.name, command, ...args], options);
  }

  /** Runs a command inside the namespace; rejects unless it exits 0. Resolves with stdout. */
  run(command: string, args: readonly string[] = [], options?: ExecOptions): Promise<string> {
    return runCommand('ip', ['netns', 'exec', this.name, command, ...args], options);
  }

  /** `ip -n <name> ...`; rejects unless it exits 0. */
  ip(...args: string[]): Promise<string> {
    return runCommand('ip', ['-n', this.name, ...args]);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.run('sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /** Loads an nftables ruleset (`nft -f -`) inside the namespace. */
  async nft(ruleset: string): Promise<void> {
    await this.run('nft', ['-f', '-'], { input: ruleset });
  }

  /** Starts a long-running process inside the namespace; it is killed at cleanup if still running. */
  spawn(command: string, args: readonly string[] = [], options: { env?: NodeJS.ProcessEnv } = {}): NetnsProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, command, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    const p = new NetnsProcess(child);
    this.topology.track(p);
    return p;
  }

  /** Kernel counters of an interface in this namespace. */
  async stats(ifname: string): Promise<InterfaceStats> {
    const json = JSON.parse(await this.ip('-s', '-j', 'link', 'show', 'dev', ifname)) as {
      stats64: {
        rx: { packets: number; bytes: number; dropped: number };
        tx: { packets: number; bytes: number; dropped: number };
      };
    }[];
    const s = json[0]!.stats64;
    return {
      rxPackets: s.rx.packets,
      rxBytes: s.rx.bytes,
      txPackets: s.tx.packets,
      txBytes: s.tx.bytes,
      rxDropped: s.rx.dropped,
      txDropped: s.tx.dropped,
    };
  }
}

export interface LinkOptions {
  /** Interface names on each side (default "to-<other's short name>", cut to 15 characters). */
  aName?: string;
  bName?: string;
  mtu?: number;
}

/** Anything with node:test's `after(fn)`: a TestContext (`t`) or the module-level hook. */
export interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

const live = new Set<Topology>();
let exitHandlersInstalled = false;
let sequence = 0;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  // Last resort when an `after` hook never ran: synchronous, so it works inside 'exit'.
  process.once('exit', () => {
    for (const topo of live) topo.cleanupSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const topo of live) topo.cleanupSync();
      process.exit(130);
    });
  }
}

/** A set of namespaces (and the processes in them) that live and die together. */
export class Topology {
  private readonly namespaces: Netns[] = [];
  private readonly processes = new Set<NetnsProcess>();
  private readonly shortNames = new Map<Netns, string>();
  private cleaning: Promise<void> | undefined;

  private constructor() {}

  /** Creates an empty topology whose cleanup runs in `hook.after` (and at process exit). Also removes
   *  namespaces that dead test processes left behind. Pass the `after` of the scope the topology lives in,
   *  called at that scope's level (module top level, or `t` inside a test); from inside a before() hook,
   *  node:test would run it right after that hook, so there call `topo.cleanup()` from your own after(). */
  static async create(hook?: AfterHook): Promise<Topology> {
    installExitHandlers();
    await sweepStaleNamespaces();
    const topo = new Topology();
    live.add(topo);
    hook?.after(() => topo.cleanup());
    return topo;
  }

  /** Creates namespace "tspt-<shortName>-<pid>-<n>" with loopback up. */
  async namespace(shortName: string): Promise<Netns> {
    if (!/^[a-z0-9-]{1,20}$/.test(shortName)) throw new Error(`bad namespace short name: ${shortName}`);
    const name = `${NAME_PREFIX}-${shortName}-${process.pid}-${++sequence}`;
    await runCommand('ip', ['netns', 'add', name]);
    const ns = new Netns(name, this);
    this.namespaces.push(ns);
    this.shortNames.set(ns, shortName);
    await ns.ip('link', 'set', 'dev', 'lo', 'up');
    return ns;
  }

  /** A veth pair between two namespaces, both ends up, with the given addresses (IPv6 ones without DAD, so
   *  they are usable at once). Returns the interface names. */
  async link(
    a: Netns,
    aAddresses: readonly string[],
    b: Netns,
    bAddresses: readonly string[],
    options: LinkOptions = {},
  ): Promise<{ aName: string; bName: string }> {
    const aName = options.aName ?? `to-${this.shortNames.get(b) ?? 'peer'}`.slice(0, 15);
    const bName = options.bName ?? `to-${this.shortNames.get(a) ?? 'peer'}`.slice(0, 15);
    await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
    for (const [ns, dev, addresses] of [
      [a, aName, aAddresses],
      [b, bName, bAddresses],
    ] as const) {
      if (options.mtu !== undefined) await ns.ip('link', 'set', 'dev', dev, 'mtu', String(options.mtu));
      for (const address of addresses) {
        await ns.ip(
          ...(address.includes(':')
            ? ['-6', 'addr', 'add', address, 'dev', dev, 'nodad']
            : ['addr', 'add', address, 'dev', dev]),
        );
      }
      await ns.ip('link', 'set', 'dev', dev, 'up');
    }
    return { aName, bName };
  }

  /** @internal Netns.spawn registers its processes here. */
  track(p: NetnsProcess): void {
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
  }

  /** Kills the processes, then deletes the namespaces (and with them every interface inside). Idempotent. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([...this.processes].map((p) => p.kill()));
      for (const ns of this.namespaces.splice(0)) await execCommand('ip', ['netns', 'del', ns.name]);
      live.delete(this);
    })();
    return this.cleaning;
  }

  /** @internal For process exit: no promises left to wait on. */
  cleanupSync(): void {
    for (const p of this.processes) p.child.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    live.delete(this);
  }
}

/** Deletes namespaces named by this helper whose creating process no longer exists. */
async function sweepStaleNamespaces(): Promise<void> {
  const list = await execCommand('ip', ['netns', 'list']);
  for (const line of list.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^tspt-[a-z0-9-]+-(\d+)-\d+$/.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await execCommand('ip', ['netns', 'del', name]);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
