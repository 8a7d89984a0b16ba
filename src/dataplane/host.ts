/** @module dataplane/host: host network setup around the native data plane's TUN device (docs/design.md,
 *  "The packet path"): link up with its MTU, the server's tunnel addresses, one route per pool, IPv6
 *  forwarding on, and IPv4 forwarding on when an IPv4 pool (v4v6 tunnels) is routed. Everything done is recorded
 *  and undone by `HostSetup.undo()`, in reverse order; the forwarding sysctls get their previous values back. Uses the `ip` and `sysctl` commands (iproute2, procps),
 *  optionally inside a named network namespace. Imports nothing from broker/, admin/, cli/ or client/. */

import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { BrokerError } from '../errors.js';

export const TUN_DEVICE_PATH = '/dev/net/tun';
const FORWARDING_SYSCTL = 'net.ipv6.conf.all.forwarding';
/** IPv4 forwarding for the v4v6 pool: ip_forward switches every interface's conf.*.forwarding at once. */
const IPV4_FORWARDING_SYSCTL = 'net.ipv4.ip_forward';
/** A hung `ip` or `sysctl` must not hang start() or close() forever. */
const COMMAND_TIMEOUT_MS = 10_000;

export interface HostSetupOptions {
  /** Run the commands inside this named network namespace (`ip netns`); the current one if absent. */
  netns?: string;
  tunName: string;
  mtu: number;
  /** Pool prefixes routed to the TUN, e.g. '2001:db8:f00::/48', or IPv4 ('192.0.2.0/24', the v4v6 pool). */
  routes: readonly string[];
  /** Server addresses put on the TUN, e.g. '2001:db8:f00::1/64' or '192.0.2.1/32' (a bare address is a host
   *  route's length). */
  addresses: readonly string[];
}

/** Fails with DP_UNAVAILABLE when this host cannot run the native data plane at all, saying what is missing. */
export async function checkHostPrerequisites(): Promise<void> {
  if (process.platform !== 'linux') {
    throw new BrokerError('DP_UNAVAILABLE', `the native data plane needs Linux (this is ${process.platform})`);
  }
  try {
    await access(TUN_DEVICE_PATH, constants.R_OK | constants.W_OK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new BrokerError(
      'DP_UNAVAILABLE',
      code === 'ENOENT'
        ? `${TUN_DEVICE_PATH} is missing: load the tun module (modprobe tun) or give the container the device`
        : `${TUN_DEVICE_PATH} is not accessible (${code ?? 'error'}): run as root or with CAP_NET_ADMIN`,
      { cause },
    );
  }
}

/** What setUpHost changed; undo() reverts it. Safe to call twice, and after a partial setup. */
export class HostSetup {
  private readonly undoSteps: (() => Promise<void>)[] = [];

  constructor(private readonly netns: string | undefined) {}

  /** Runs `ip` (inside the namespace, if any); rejects with DP_UNAVAILABLE quoting its stderr. */
  async ip(args: readonly string[]): Promise<string> {
    return run('ip', this.netns === undefined ? args : ['-n', this.netns, ...args]);
  }

  async readSysctl(key: string): Promise<string> {
    return (await this.inNamespace('sysctl', ['-n', key])).trim();
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    await this.inNamespace('sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /** Records how to revert a step that succeeded. */
  onUndo(step: () => Promise<void>): void {
    this.undoSteps.push(step);
  }

  async undo(): Promise<void> {
    // Reverse order; a failing step (the device already gone takes its routes with it) does not stop the rest.
    while (this.undoSteps.length > 0) {
      const step = this.undoSteps.pop()!;
      await step().catch(() => {});
    }
  }

  private inNamespace(command: string, args: readonly string[]): Promise<string> {
    return this.netns === undefined ? run(command, args) : run('ip', ['netns', 'exec', this.netns, command, ...args]);
  }
}

/** Configures the (already created) TUN device and the host around it. On failure, undoes what it did and
 *  rejects with DP_UNAVAILABLE. */
export async function setUpHost(options: HostSetupOptions): Promise<HostSetup> {
  const host = new HostSetup(options.netns);
  const dev = options.tunName;
  try {
    await host.ip(['link', 'set', 'dev', dev, 'mtu', String(options.mtu), 'up']);
    for (const address of options.addresses) {
      const v6 = address.includes(':');
      const withLength = address.includes('/') ? address : `${address}/${v6 ? 128 : 32}`;
      const family = v6 ? '-6' : '-4';
      // nodad: the TUN is point-to-point and ours alone; duplicate detection would only delay the address.
      await host.ip([family, 'addr', 'add', withLength, 'dev', dev, ...(v6 ? ['nodad'] : [])]);
      host.onUndo(() => host.ip([family, 'addr', 'del', withLength, 'dev', dev]).then(() => {}));
    }
    for (const prefix of options.routes) {
      const family = prefix.includes(':') ? '-6' : '-4';
      await host.ip([family, 'route', 'replace', prefix, 'dev', dev]);
      host.onUndo(() => host.ip([family, 'route', 'del', prefix, 'dev', dev]).then(() => {}));
    }
    await enableForwarding(host, FORWARDING_SYSCTL);
    if (options.routes.some((prefix) => !prefix.includes(':'))) await enableForwarding(host, IPV4_FORWARDING_SYSCTL);
    return host;
  } catch (e) {
    await host.undo();
    throw e;
  }
}

/** Sets a forwarding sysctl to 1 unless it already is, and records how to put the old value back. */
async function enableForwarding(host: HostSetup, key: string): Promise<void> {
  const previous = await host.readSysctl(key);
  if (previous === '1') return;
  await host.writeSysctl(key, '1');
  host.onUndo(() => host.writeSysctl(key, previous));
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: COMMAND_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new BrokerError(
          'DP_UNAVAILABLE',
          missing
            ? `host setup needs the ${command} command (iproute2/procps), which is not installed`
            : `host setup failed: ${command} ${args.join(' ')}: ${stderr.trim() || error.message}`,
          { cause: error },
        ),
      );
    });
  });
}
