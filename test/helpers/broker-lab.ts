/** @module test/helpers/broker-lab: a whole broker deployment in network namespaces for end-to-end tests over
 *  real TSP: a `tsp-broker serve` process (so kill -9 is real) on the native data plane, or on the eBPF fast
 *  path in front of it (`BrokerLab.create({ dataplane: { driver: 'ebpf' } })`; LAB_DRIVERS and labSkip below
 *  let a suite run on both), clients behind a NAT and clients without one, each running
 *  test/helpers/tsp-test-client.ts, and an IPv6 host on the "internet".
 *
 *    nat clients 192.0.2.<16k+2>/28 ──┐
 *                                      nat (masquerade to 203.0.113.2) ── broker 203.0.113.1 ── inet 2001:db8:100::2/64
 *    direct clients 198.51.100.<16k+2>/28 ───────────────────────────────┘ (198.51.100.<16k+1>)
 *
 *  The broker listens on 0.0.0.0:3653, so offers name the address each client reaches it on; its admin server
 *  is on 127.0.0.1:8080 inside its namespace (for /metrics). Pools: links from 2001:db8:f00::/48, delegated
 *  prefixes from 2001:db8:f000::/40. Keepalives and idle limits are short (tunnels.* below) so expiry takes
 *  seconds. Everything is torn down by cleanup(): processes killed, namespaces deleted, the temporary folder
 *  removed. Documentation address ranges only. Needs root and /dev/net/tun. */

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import { parseConfig, type ConfigInput } from '../../src/config/schema.js';
import { openStore } from '../../src/store/open.js';
import { deriveCredentials } from '../../src/broker/credentials.js';
import { ebpfUnavailable } from '../../src/dataplane/ebpf-addon.js';
import type { Offer } from '../../src/protocol/xml.js';
import type { TunnelRecord } from '../../src/store/types.js';
import { Topology, execCommand, type Netns, type NetnsProcess } from './netns.js';
import type { ClientPlan } from './tsp-test-client.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BROKER_BIN = path.join(ROOT, 'bin/tsp-broker.js');
const CLIENT_SCRIPT = path.join(ROOT, 'test/helpers/tsp-test-client.ts');

export const BROKER_BEHIND_NAT = '203.0.113.1';
export const NAT_OUTSIDE = '203.0.113.2';
export const INET_HOST = '2001:db8:100::2';
export const ADMIN_PORT = 8080;
export const REALM = 'tsp-e2e';
/** Bounded waits: a broker or client that does not come up fails the test, not the run. */
const START_TIMEOUT_MS = 20_000;

/** The data-plane drivers the namespace suites run `serve` on: the addon alone, and the eBPF fast path in front
 *  of it (which must behave the same wherever a user could tell). */
export const LAB_DRIVERS = ['native', 'ebpf'] as const;
export type LabDriver = (typeof LAB_DRIVERS)[number];

/** Why a lab on `driver` cannot run here, or false: root and /dev/net/tun for both, and for ebpf the loader and
 *  programs, except under CI (which installs clang and libbpf-dev), where a missing fast path must fail. */
export function labSkip(driver: LabDriver): string | false {
  if (process.getuid?.() !== 0 || !existsSync('/dev/net/tun')) return 'needs root and /dev/net/tun';
  if (driver === 'ebpf' && process.env.CI !== 'true') return ebpfUnavailable() ?? false;
  return false;
}

/** <prefix>::1 as canonical text (offers write addresses fully expanded). */
export function firstHost(prefixAddress: string): string {
  const bytes = ipaddr.IPv6.parse(prefixAddress).toByteArray();
  bytes[15] = 1;
  return ipaddr.fromByteArray(bytes).toString();
}

/** Canonical text of an IPv6 address (offers expand them; ping and the store do not). */
export function canonical(address: string): string {
  return ipaddr.IPv6.parse(address).toString();
}

export interface LabClient {
  ns: Netns;
  /** The client's own IPv4 address (what it declares in the create request). */
  ipv4: string;
  /** The broker address it talks TSP to. */
  server: string;
}

export interface RunningClient {
  process: NetnsProcess;
  offer: Offer;
  localPort: number;
  /** The offer's client address, canonical. */
  address: string;
  stop(): Promise<void>;
}

export class BrokerLab {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-broker-e2e-'));
  readonly dbPath = path.join(this.dir, 'broker.db');
  readonly configPath = path.join(this.dir, 'broker.json');
  broker!: Netns;
  nat!: Netns;
  inet!: Netns;
  /** The running broker process, if any. */
  process: NetnsProcess | undefined;
  private natClients = 0;
  private directClients = 0;

  private constructor(readonly topo: Topology) {}

  /** Builds the namespaces and writes the broker's configuration (`overrides` merged over the lab's). */
  static async create(overrides: ConfigInput = {}): Promise<BrokerLab> {
    const lab = new BrokerLab(await Topology.create());
    try {
      await lab.build(overrides);
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
    return lab;
  }

  private async build(overrides: ConfigInput): Promise<void> {
    const topo = this.topo;
    this.broker = await topo.namespace('broker');
    this.nat = await topo.namespace('nat');
    this.inet = await topo.namespace('inet');
    await topo.link(this.nat, [`${NAT_OUTSIDE}/24`], this.broker, [`${BROKER_BEHIND_NAT}/24`]);
    await topo.link(this.broker, ['2001:db8:100::1/64'], this.inet, [`${INET_HOST}/64`]);
    await this.inet.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:100::1');
    await this.nat.sysctl('net.ipv4.ip_forward', 1);
    await this.nat.nft(
      'table ip nat {\n' +
        '  chain postrouting { type nat hook postrouting priority 100; oifname "to-broker" masquerade; }\n' +
        '}\n',
    );
    const config: ConfigInput = {
      listen: { address: '0.0.0.0', port: 3653 },
      auth: { mode: 'hybrid', plain: true, realm: REALM },
      tunnels: { keepalive: { default: 2, min: 1, max: 10 }, idleIntervals: 3, idleMinS: 5 },
      pools: { link: '2001:db8:f00::/48', delegation: '2001:db8:f000::/40' },
      store: { path: this.dbPath },
      dataplane: { driver: 'native', tun: 'tsp0' },
      admin: { enabled: true, address: '127.0.0.1', port: ADMIN_PORT },
      log: { level: process.env.TSP_TEST_DEBUG ? 'debug' : 'info' },
    };
    merge(config as Record<string, unknown>, overrides as Record<string, unknown>);
    parseConfig(config); // fail here, with the key named, rather than in the broker's stderr
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  /** A client namespace behind the NAT, in a /28 of its own inside 192.0.2.0/24. */
  async natClient(shortName: string): Promise<LabClient> {
    const base = 16 * this.natClients++;
    const ns = await this.topo.namespace(shortName);
    const ipv4 = `192.0.2.${base + 2}`;
    await this.topo.link(ns, [`${ipv4}/28`], this.nat, [`192.0.2.${base + 1}/28`]);
    await ns.ip('route', 'add', 'default', 'via', `192.0.2.${base + 1}`);
    return { ns, ipv4, server: BROKER_BEHIND_NAT };
  }

  /** A client namespace with a direct link to the broker (no NAT), in a /28 of 198.51.100.0/24. */
  async directClient(shortName: string): Promise<LabClient> {
    const base = 16 * this.directClients++;
    const ns = await this.topo.namespace(shortName);
    const ipv4 = `198.51.100.${base + 2}`;
    const server = `198.51.100.${base + 1}`;
    await this.topo.link(ns, [`${ipv4}/28`], this.broker, [`${server}/28`]);
    return { ns, ipv4, server };
  }

  async addUser(username: string, password: string): Promise<void> {
    const store = await openStore(parseConfig({ store: { path: this.dbPath } }).store);
    try {
      await store.createAccount({ username, role: 'user', ...(await deriveCredentials(username, password, REALM)) });
    } finally {
      await store.close();
    }
  }

  /** Starts `tsp-broker serve` in the broker namespace and waits until it listens. */
  async startBroker(): Promise<NetnsProcess> {
    const p = this.broker.spawn(process.execPath, [BROKER_BIN, 'serve', '--config', this.configPath]);
    this.process = p;
    await p.waitFor('tsp-broker listening', START_TIMEOUT_MS);
    return p;
  }

  /** kill -9: no shutdown code runs, the TUN disappears with the process. */
  async killBroker(): Promise<void> {
    const p = this.process;
    if (!p) return;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  /** Runs the test client in `client`'s namespace and waits for its tunnel to be up. */
  async startClient(client: LabClient, plan: Omit<ClientPlan, 'server' | 'clientIpv4'>): Promise<RunningClient> {
    const full: ClientPlan = { server: client.server, clientIpv4: client.ipv4, maxLifetimeS: 600, ...plan };
    const p = client.ns.spawn(process.execPath, ['--import', 'tsx', CLIENT_SCRIPT, JSON.stringify(full)]);
    await Promise.race([
      p.waitFor('"event":"up"', START_TIMEOUT_MS),
      p.exited.then(() => {
        throw new Error(`test client exited: ${p.stdout} ${p.stderr}`);
      }),
    ]);
    const up = JSON.parse(p.stdout.split('\n').find((l) => l.includes('"event":"up"'))!) as {
      offer: Offer;
      localPort: number;
    };
    return { process: p, ...up, address: canonical(up.offer.clientIpv6), stop: () => p.kill() };
  }

  /** Packets written into the broker's TUN (tsp0's receive count): the addon's decapsulations. The eBPF programs
   *  hand theirs to the kernel on the uplink instead, so on ebpf this counts only what they left to the addon. */
  async tunWrites(): Promise<number> {
    return (await this.broker.stats('tsp0')).rxPackets;
  }

  /** ping6, 3 echoes with bounded waits; resolves with whether replies came back (ping exits 0). */
  async ping(ns: Netns, to: string, extra: string[] = []): Promise<boolean> {
    const r = await ns.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to], { timeoutMs: 15_000 });
    if (r.code !== 0 && process.env.TSP_TEST_DEBUG) console.error(`ping ${to} from ${ns.name}:`, r.stdout, r.stderr);
    return r.code === 0;
  }

  /** /metrics from the broker's admin server, read inside its namespace: `name{labels}` -> value. */
  async metrics(): Promise<Map<string, number>> {
    const script =
      `fetch('http://127.0.0.1:${ADMIN_PORT}/metrics').then((r)=>r.text())` +
      `.then((t)=>process.stdout.write(t),(e)=>{console.error(e);process.exit(1)})`;
    const text = await this.broker.run(process.execPath, ['-e', script]);
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]));
    }
    return out;
  }

  async drops(reason: string): Promise<number> {
    return (await this.metrics()).get(`tsp_dataplane_drops_total{reason="${reason}"}`) ?? 0;
  }

  /** `tsp-broker tunnel list --all --json` on the lab's database: what an operator would see. */
  async tunnelList(): Promise<TunnelRecord[]> {
    const r = await execCommand(process.execPath, [
      BROKER_BIN,
      'tunnel',
      'list',
      '--all',
      '--json',
      '--db',
      this.dbPath,
    ]);
    if (r.code !== 0) throw new Error(`tunnel list failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as TunnelRecord[];
  }

  /** Kills every process, deletes the namespaces and the temporary folder. Idempotent. */
  async cleanup(): Promise<void> {
    await this.topo.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Deep-merges plain objects from `over` into `into` (arrays and values replace). */
function merge(into: Record<string, unknown>, over: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(over)) {
    const current = into[key];
    const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
    if (isObject(value) && isObject(current)) merge(current, value);
    else into[key] = value;
  }
}

/** Polls `probe` until it resolves true; bounded. */
export async function eventuallyAsync(probe: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
