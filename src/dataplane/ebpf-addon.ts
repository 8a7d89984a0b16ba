/** @module dataplane/ebpf-addon: the eBPF fast path's raw surface (native/src/ebpf/ebpf_addon.cc, tsp_ebpf.node)
 *  and what it needs on disk (native/build/bpf/fastpath.bpf.o), both built by `npm install` where clang and
 *  libbpf-dev are installed (scripts/build-native.mjs). `ebpfUnavailable()` says why the fast path cannot run
 *  here, so `dataplane.driver: auto` can log it; loading never throws anything but DP_UNAVAILABLE. */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { BrokerError } from '../errors.js';

const ADDON_PATH = '../../native/build/Release/tsp_ebpf.node';
/** The compiled TC programs (native/src/bpf/fastpath.bpf.c). */
export const BPF_OBJECT_PATH = fileURLToPath(new URL('../../native/build/bpf/fastpath.bpf.o', import.meta.url));

/** The programs' statistics, in native/src/bpf/fastpath.h `enum tsp_fp_stat` order. */
export const FAST_PATH_STAT_NAMES = [
  'decap_packets',
  'encap_packets',
  'spoofed_source',
  'link_local_source',
  'slow_decap',
  'slow_encap',
  'encap_failed',
] as const;
export type FastPathStatName = (typeof FAST_PATH_STAT_NAMES)[number];

export interface FastPathTunnel {
  id: number;
  type: 'v6udpv4' | 'v6v4';
  clientAddress: string;
  clientPort: number;
  serverIpv6: string;
  clientIpv6: string;
  delegatedAddress?: string;
  delegatedLength?: number;
}

export interface FastPathHandle {
  addTunnel(tunnel: FastPathTunnel): void;
  removeTunnel(id: number): void;
  tunnelCount(): number;
  /** Records of (id, rxPackets, rxBytes, txPackets, txBytes, lastRxMs), as the production addon lays them. */
  readCounters(): Float64Array;
  readCountersOf(ids: Float64Array): Float64Array;
  /** The tunnels whose packet counts moved since the previous call. */
  readChanged(): Float64Array;
  readStats(): Float64Array;
  close(): void;
}

export interface FastPathOptions {
  objectPath: string;
  netns?: string;
  tunName: string;
  uplinks: string[];
  localIpv4: string[];
  port: number;
  maxInnerBytes: number;
  proto41SourceIpv4?: string;
}

interface EbpfAddon {
  FastPathHandle: new (options: FastPathOptions) => FastPathHandle;
  STAT_NAMES: readonly string[];
}

let addon: EbpfAddon | undefined;

/** Why the fast path cannot run on this host, or undefined when it can be tried (root is checked at start). */
export function ebpfUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `the eBPF fast path needs Linux (this is ${process.platform})`;
  try {
    loadEbpfAddon();
  } catch (e) {
    return (e as Error).message;
  }
  if (!existsSync(BPF_OBJECT_PATH))
    return 'the eBPF programs are not built (native/build/bpf/fastpath.bpf.o): install clang and libbpf-dev, then npm install';
  return undefined;
}

/** Loads tsp_ebpf.node once; DP_UNAVAILABLE if it was not built or its statistics are not ours. */
export function loadEbpfAddon(): EbpfAddon {
  if (addon) return addon;
  let loaded: EbpfAddon;
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as EbpfAddon;
  } catch (cause) {
    throw new BrokerError(
      'DP_UNAVAILABLE',
      'the eBPF loader is not built (native/build/Release/tsp_ebpf.node): install libbpf-dev and clang, then npm install',
      { cause },
    );
  }
  const names = loaded.STAT_NAMES;
  if (names.length !== FAST_PATH_STAT_NAMES.length || names.some((n, i) => n !== FAST_PATH_STAT_NAMES[i]))
    throw new BrokerError(
      'DP_UNAVAILABLE',
      `the eBPF loader's statistics [${names.join(', ')}] are not src/dataplane/ebpf-addon.ts's: rebuild (npm install)`,
    );
  addon = loaded;
  return addon;
}
