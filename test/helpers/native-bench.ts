/** @module test/helpers/native-bench: loads tsp_bench.node, the addon of bench and test tools that the broker
 *  does not ship (native/bench/: the packet generator for bench/dataplane.ts, enterNetns for the root tests).
 *  node-gyp builds it next to the production addon when native/bench/ is present. */

import { createRequire } from 'node:module';

const BENCH_ADDON_PATH = '../../native/build/Release/tsp_bench.node';

export interface GeneratorOptions {
  netns?: string;
  /** 4: whole IPv4 packets; 6: whole IPv6 packets (headers included, sent on an IPPROTO_RAW socket). */
  family: 4 | 6;
  packets: readonly Uint8Array[];
  seconds: number;
  cpu?: number;
}

export interface BenchAddon {
  /** Sends the packets round robin for `seconds` from a pinned native thread (bench/dataplane.ts). */
  runGenerator(options: GeneratorOptions): Promise<{ sent: number; errors: number; seconds: number }>;
  /** Moves the calling thread into a named network namespace for good (tests that run inside one). */
  enterNetns(name: string): void;
  /** A raw IPv6 next-header-4 socket bound to `bind` (connected to `peer`: only its packets arrive): a v4v6
   *  tunnel client's outer end. Returns its descriptor. */
  ipipOpen(bind: string, peer?: string): number;
  /** Sends `data` (an inner IPv4 packet) to `to` in IPv6 with next header 4. Throws if the kernel refuses. */
  ipipSend(fd: number, to: string, data: Uint8Array): void;
  /** The next waiting inner packet, or null; never blocks. */
  ipipReceive(fd: number): Buffer | null;
  ipipClose(fd: number): void;
}

let addon: BenchAddon | undefined;

/** Loads tsp_bench.node once; throws saying how to build it when it is missing. */
export function loadBenchAddon(): BenchAddon {
  if (addon) return addon;
  try {
    addon = createRequire(import.meta.url)(BENCH_ADDON_PATH) as BenchAddon;
    return addon;
  } catch (cause) {
    throw new Error(
      'native/build/Release/tsp_bench.node is not built: run node scripts/build-native.mjs (its log says why the ' +
        'bench target was skipped, if it was)',
      { cause },
    );
  }
}
