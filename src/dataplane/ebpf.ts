/** @module dataplane/ebpf: EbpfDataPlane, `dataplane.driver: "ebpf"`: the kernel fast path (TC programs in
 *  native/src/bpf/, loaded by native/src/ebpf/) in front of NativeDataPlane, which stays the slow path.
 *
 *  start():  NativeDataPlane.start() (TUN, sockets, host setup, threads) --> the uplinks: every interface with an
 *            IPv4 address but the TUN --> programs loaded, maps configured (the listen address, or every address
 *            found for 0.0.0.0), decap attached to each uplink's ingress and encap to the TUN's egress
 *  close():  programs detached and maps freed, then NativeDataPlane.close()
 *
 *  Every tunnel goes to both: v6udpv4 and v6v4 into the maps too (v4v6 only to the addon). The programs carry the
 *  plain cases and leave everything else untouched for the addon (echo to the server address, hairpin, odd
 *  headers, unknown endpoints, no route: docs/architecture.md, "The eBPF fast path"), so a packet is counted by
 *  exactly one of them, and the counters read here are the sum of both. Imports nothing from broker/ or cli/. */

import { BrokerError } from '../errors.js';
import { clientPortFor } from '../tunnel-model.js';
import {
  BPF_OBJECT_PATH,
  FAST_PATH_STAT_NAMES,
  ebpfUnavailable,
  loadEbpfAddon,
  type FastPathHandle,
  type FastPathStatName,
} from './ebpf-addon.js';
import { HostSetup } from './host.js';
import { NativeDataPlane, type NativeDataPlaneOptions } from './native.js';
import type { NativeCounterName } from './native-addon.js';
import type {
  ControlDatagram,
  DataPlane,
  DropReason,
  Endpoint,
  TunnelCounters,
  TunnelId,
  TunnelSpec,
} from './types.js';

export interface EbpfDataPlaneOptions extends NativeDataPlaneOptions {
  /** Interfaces to decapsulate on; default: every interface with an IPv4 address, the TUN excepted. */
  uplinks?: readonly string[];
}

const STRIDE = 6;

export class EbpfDataPlane implements DataPlane {
  readonly kind = 'ebpf' as const;
  /** The addon: everything the programs hand up. */
  readonly slow: NativeDataPlane;
  private fast: FastPathHandle | undefined;
  private closing: Promise<void> | undefined;
  /** Tunnels the maps refused (full): the slow path carries them alone. */
  private refused = 0;
  /** The uplinks the decap program is attached to. Valid after start(). */
  uplinks: readonly string[] = [];

  constructor(private readonly options: EbpfDataPlaneOptions) {
    this.slow = new NativeDataPlane(options);
  }

  get udpPort(): number {
    return this.slow.udpPort;
  }

  get tunName(): string {
    return this.slow.tunName;
  }

  async start(): Promise<void> {
    // DP_UNAVAILABLE before anything is set up when the loader or the programs are not built
    const missing = ebpfUnavailable();
    if (missing !== undefined) throw new BrokerError('DP_UNAVAILABLE', missing);
    const lib = loadEbpfAddon();
    await this.slow.start();
    try {
      const found = await findUplinks(this.options, this.slow.tunName);
      this.uplinks = this.options.uplinks ?? found.uplinks;
      this.fast = new lib.FastPathHandle({
        objectPath: BPF_OBJECT_PATH,
        ...(this.options.netns !== undefined ? { netns: this.options.netns } : {}),
        tunName: this.slow.tunName,
        uplinks: [...this.uplinks],
        localIpv4: found.addresses,
        port: this.slow.udpPort,
        maxInnerBytes: this.options.mtu ?? 1280,
        ...(this.options.serverIpv4 !== undefined ? { proto41SourceIpv4: this.options.serverIpv4 } : {}),
      });
    } catch (e) {
      await this.slow.close();
      const why = e instanceof Error ? e.message : String(e);
      throw new BrokerError('DP_UNAVAILABLE', `eBPF fast path: ${why}`, { cause: e });
    }
  }

  addTunnel(spec: TunnelSpec): void {
    this.slow.addTunnel(spec);
    const fast = this.live();
    if (spec.type === 'v4v6') {
      fast.removeTunnel(spec.id); // an id that was v6 before is the addon's alone now
      return;
    }
    try {
      fast.addTunnel({
        id: spec.id,
        type: spec.type,
        clientAddress: spec.client.address,
        clientPort: clientPortFor(spec.type, spec.client.port),
        serverIpv6: spec.serverIpv6,
        clientIpv6: spec.clientIpv6,
        ...(spec.delegated ? { delegatedAddress: spec.delegated.address, delegatedLength: spec.delegated.length } : {}),
      });
    } catch {
      // A full map: whatever the maps held for this id goes, so the addon carries all of its traffic.
      fast.removeTunnel(spec.id);
      this.refused++;
    }
  }

  removeTunnel(id: TunnelId): void {
    this.live().removeTunnel(id);
    this.slow.removeTunnel(id);
  }

  readCounters(): TunnelCounters[] {
    return merge(this.slow.readCounters(), records(this.live().readCounters()));
  }

  readCountersOf(ids: readonly TunnelId[]): TunnelCounters[] {
    if (ids.length === 0) return [];
    const slow = this.slow.readCountersOf(ids);
    const fast = records(this.live().readCountersOf(Float64Array.from(ids)));
    const merged = new Map(merge(slow, fast).map((c) => [c.id, c]));
    return ids.flatMap((id) => merged.get(id) ?? []);
  }

  /** The union of what moved on either side, each reported with both sides' counters. */
  readChanged(): TunnelCounters[] {
    const ids = new Set<TunnelId>(this.slow.readChanged().map((c) => c.id));
    for (const c of records(this.live().readChanged())) ids.add(c.id);
    return ids.size === 0 ? [] : this.readCountersOf([...ids]);
  }

  readDrops(): Record<DropReason, number> {
    const drops = this.slow.readDrops();
    const stats = this.readFastPathStats();
    drops.spoofed_source += stats.spoofed_source;
    drops.link_local_source += stats.link_local_source;
    return drops;
  }

  /** The addon's counters with what the programs did under the same names: a decapsulated packet handed to
   *  the kernel is what the addon counts as a TUN write. */
  readNativeCounters(): Record<NativeCounterName, number> {
    const counters = this.slow.readNativeCounters();
    const stats = this.readFastPathStats();
    counters.spoofed_source += stats.spoofed_source;
    counters.link_local_source += stats.link_local_source;
    counters.tun_write_packets += stats.decap_packets;
    return counters;
  }

  /** What the programs did (native/src/bpf/fastpath.h `enum tsp_fp_stat`), summed over CPUs, plus the tunnels
   *  the maps refused. */
  readFastPathStats(): Record<FastPathStatName | 'refused_tunnels', number> {
    const values = this.live().readStats();
    const out = { refused_tunnels: this.refused } as Record<FastPathStatName | 'refused_tunnels', number>;
    FAST_PATH_STAT_NAMES.forEach((name, i) => (out[name] = values[i] ?? 0));
    return out;
  }

  /** Tunnels in the programs' maps. */
  fastTunnelCount(): number {
    return this.live().tunnelCount();
  }

  onControl(handler: (batch: readonly ControlDatagram[]) => void): void {
    this.slow.onControl(handler);
  }

  sendControl(to: Endpoint, datagram: Uint8Array): void {
    this.slow.sendControl(to, datagram);
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const fast = this.fast;
    this.fast = undefined;
    fast?.close(); // the filters go before the TUN and sockets they feed
    await this.slow.close();
  }

  private live(): FastPathHandle {
    if (!this.fast) throw new BrokerError('DP_FAILED', 'eBPF data plane is not running');
    return this.fast;
  }
}

function records(values: Float64Array): TunnelCounters[] {
  const out: TunnelCounters[] = [];
  for (let at = 0; at + STRIDE <= values.length; at += STRIDE) {
    out.push({
      id: values[at] as TunnelId,
      rxPackets: values[at + 1]!,
      rxBytes: values[at + 2]!,
      txPackets: values[at + 3]!,
      txBytes: values[at + 4]!,
      lastRxMs: values[at + 5]!,
    });
  }
  return out;
}

/** The slow path's records with the fast path's added in (same id: counts summed, the later last-seen time). */
function merge(slow: TunnelCounters[], fast: TunnelCounters[]): TunnelCounters[] {
  const byId = new Map(fast.map((c) => [c.id, c]));
  return slow.map((s) => {
    const f = byId.get(s.id);
    if (!f) return s;
    return {
      id: s.id,
      rxPackets: s.rxPackets + f.rxPackets,
      rxBytes: s.rxBytes + f.rxBytes,
      txPackets: s.txPackets + f.txPackets,
      txBytes: s.txBytes + f.txBytes,
      lastRxMs: Math.max(s.lastRxMs, f.lastRxMs),
    };
  });
}

interface IpAddressEntry {
  ifname: string;
  addr_info?: { family?: string; local?: string }[];
}

/** The interfaces the TSP port's traffic may arrive on and the addresses it is sent to (the only destinations
 *  the decap program takes): every interface with an IPv4 address but the TUN (a packet to a specific listen
 *  address may come in on any of them), and the listen address, or every address found for 0.0.0.0. */
async function findUplinks(
  options: EbpfDataPlaneOptions,
  tunName: string,
): Promise<{ uplinks: string[]; addresses: string[] }> {
  const host = new HostSetup(options.netns);
  const entries = JSON.parse(await host.ip(['-j', '-4', 'addr', 'show'])) as IpAddressEntry[];
  const uplinks: string[] = [];
  const addresses: string[] = [];
  for (const entry of entries) {
    const own = (entry.addr_info ?? []).map((a) => a.local).filter((a): a is string => a !== undefined);
    if (own.length === 0 || entry.ifname === tunName) continue;
    uplinks.push(entry.ifname);
    addresses.push(...own.filter((a) => options.listenAddress === '0.0.0.0' || a === options.listenAddress));
  }
  if (addresses.length === 0)
    throw new BrokerError('DP_UNAVAILABLE', `no interface holds the listen address ${options.listenAddress}`);
  return { uplinks, addresses };
}
