/** @module bench/dataplane: `npm run bench:dataplane`. Throughput of the data planes (native, and ebpf where it can
 *  run) against the kernel's own forwarding of the same traffic on the same topology, run side by side
 *  (ARCHITECTURE.md, "What measurements on these machines say about the packet path"; docs/architecture.md,
 *  "The eBPF fast path").
 *
 *    client 198.51.100.2(.3…) ── veth ── broker 198.51.100.1 | 192.0.2.1 ── veth ── inet 192.0.2.2,
 *           2001:db8:101::2                     2001:db8:101::1 | 2001:db8:100::1          2001:db8:100::2
 *                                   tsp0 ← 2001:db8:f00::/48, 2001:db8:4000::/34
 *
 *  decap: the generator in `client` sends v6udpv4 datagrams (inner IPv6/UDP of 100 or 1280 bytes) from the
 *         endpoints of 1,024 tunnels spread over the table; the data plane checks and decapsulates them; the
 *         kernel forwards them to `inet`. Counted at inet's veth.
 *         kernel baseline: the same datagrams addressed to 203.0.113.9: the broker's IPv4 forwarding.
 *  encap: the generator in `inet` sends IPv6/UDP packets of 100 or 1280 bytes to those tunnels' client addresses;
 *         the kernel routes them into tsp0 and the data plane encapsulates them to the clients' endpoints.
 *         Counted at client's veth. kernel baseline: the same inner packets to 2001:db8:300::/48, which the
 *         broker forwards as IPv6 to `client`: the broker's IPv6 forwarding of the same inner traffic.
 *  Both sinks drop at ingress (nftables netdev), after the veth has counted them, so no socket work is measured.
 *
 *  Modes (BENCH_MODES): two-core: the broker's threads on CPU 0 (busy-polling), the generator (a native thread,
 *  sendmmsg of prebuilt packets) on CPU 1. one-core: everything on CPU 1: the generator, the broker's threads (no
 *  busy-poll) and, since on veth the kernel's forwarding and the TC programs run in the sender's context, the
 *  softirq work too; a rate there is the inverse of the CPU time per packet of the whole path. Either way the
 *  kernel baseline is generator-bound: a ratio near 1 means "as fast as this generator can push".
 *  Tunnels (BENCH_TUNNELS): 10,000 and 100,000 in the tables; the traffic tunnels are spread over all of them.
 *  Needs root. Only documentation address ranges, in namespaces created and removed here. */

import { EbpfDataPlane } from '../src/dataplane/ebpf.js';
import { ebpfUnavailable } from '../src/dataplane/ebpf-addon.js';
import { NativeDataPlane, type NativeDataPlaneOptions } from '../src/dataplane/native.js';
import { loadBenchAddon } from '../test/helpers/native-bench.js';
import { Topology, type Netns } from '../test/helpers/netns.js';
import {
  BROKER_V4,
  HEADER,
  KERNEL_V6_ROUTE,
  TSP_PORT,
  clientV4Addresses,
  formatRow,
  goals,
  loadTunnels,
  runConfig,
  type Places,
  type Row,
  type Settings,
} from './dataplane-cases.js';

const list = (value: string | undefined, fallback: string): string[] =>
  (value ?? fallback).split(',').filter((v) => v !== '');

const GENERATOR_CPU = 1;
const SETTINGS: Settings = {
  seconds: Number(process.env.BENCH_SECONDS ?? 3),
  settleSeconds: 0.5,
  repeats: Number(process.env.BENCH_REPEATS ?? 3),
  only: process.env.BENCH_ONLY ?? '',
  generatorCpu: GENERATOR_CPU,
  trafficTunnels: Number(process.env.BENCH_TRAFFIC_TUNNELS ?? 1_024),
};
/** BENCH_DRIVERS=native,ebpf: the data planes measured, one after the other on the same topology (default: both,
 *  ebpf when it can run here). */
const DRIVERS = list(process.env.BENCH_DRIVERS, ebpfUnavailable() === undefined ? 'native,ebpf' : 'native');
/** BENCH_MODES=two-core,one-core (above). */
const MODES = list(process.env.BENCH_MODES, 'two-core,one-core');
/** BENCH_TUNNELS=10000,100000: tunnels in the tables. */
const TUNNELS = list(process.env.BENCH_TUNNELS, '10000,100000').map(Number);
/** In two-core mode the broker's core is the data plane's alone, so it may busy-poll (NativeDataPlaneOptions.spinMicros). */
const SPIN_MICROS = Number(process.env.BENCH_SPIN_MICROS ?? 50);
const TUN_WRITES = process.env.BENCH_TUN_WRITES === 'write' ? 'write' : 'io_uring';
const POOLS = ['2001:db8:f00::/48', '2001:db8:4000::/34'];
/** BENCH_POOL_NEXTHOP=fe80::1, a diagnosis: the pools routed to tsp0 through that one next hop instead of on-link,
 *  so the kernel keeps one neighbour entry for them rather than one per destination (docs/architecture.md,
 *  "The eBPF fast path", on what the per-destination entries cost beyond 1,024 destinations). */
const POOL_NEXTHOP = process.env.BENCH_POOL_NEXTHOP ?? '';

function modeOptions(mode: string): { cpu: number; spinMicros: number } {
  if (mode === 'two-core') return { cpu: 0, spinMicros: SPIN_MICROS };
  if (mode === 'one-core') return { cpu: GENERATOR_CPU, spinMicros: 0 };
  throw new Error(`BENCH_MODES: unknown mode ${mode} (two-core, one-core)`);
}

/** client — broker — inet with the routes, neighbours and sinks described above. */
async function buildTopology(topo: Topology, maxTunnels: number): Promise<Places & { broker: Netns }> {
  const client = await topo.namespace('bench-client');
  const broker = await topo.namespace('bench-broker');
  const inet = await topo.namespace('bench-inet');
  const clientAddresses = clientV4Addresses(maxTunnels);
  await topo.link(client, [...clientAddresses.map((a) => `${a}/24`), '2001:db8:101::2/64'], broker, [
    `${BROKER_V4}/24`,
    '2001:db8:101::1/64',
  ]);
  await topo.link(broker, ['192.0.2.1/24', '2001:db8:100::1/64'], inet, ['192.0.2.2/24', '2001:db8:100::2/64']);
  await broker.ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.2');
  await broker.ip('-6', 'route', 'add', '2001:db8:200::/64', 'via', '2001:db8:100::2');
  await broker.ip('-6', 'route', 'add', KERNEL_V6_ROUTE, 'via', '2001:db8:101::2');
  await broker.sysctl('net.ipv4.ip_forward', 1);
  await broker.sysctl('net.ipv6.conf.all.forwarding', 1);
  await client.ip('route', 'add', '192.0.2.0/24', 'via', BROKER_V4);
  await client.ip('route', 'add', '203.0.113.0/24', 'via', BROKER_V4);
  await inet.ip('route', 'add', '198.51.100.0/24', 'via', '192.0.2.1');
  await inet.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:100::1');
  // Neighbours resolved up front, so the first packets of a run do not wait on ARP/ND.
  for (const a of clientAddresses) await client.exec('ping', ['-c', '1', '-W', '1', '-I', a, BROKER_V4]);
  await client.exec('ping', ['-6', '-c', '1', '-W', '1', '2001:db8:101::1']);
  await inet.exec('ping', ['-c', '1', '-W', '1', '192.0.2.1']);
  await inet.exec('ping', ['-6', '-c', '1', '-W', '1', '2001:db8:100::1']);
  for (const ns of [client, inet]) {
    // UDP only: ARP and neighbour discovery must keep working.
    await ns.nft(
      `table netdev sink {\n chain in {\n  type filter hook ingress device "to-bench-broker" priority 0;\n` +
        `  ip protocol udp drop\n  ip6 nexthdr udp drop\n }\n}\n`,
    );
  }
  return { client, broker, inet, addon: loadBenchAddon() };
}

function describeDataPlane(dp: NativeDataPlane | EbpfDataPlane, label: string, loadMs: number): string {
  const drops = dp.readDrops();
  const diag = dp.readNativeCounters();
  const fast = dp instanceof EbpfDataPlane ? `; programs ${JSON.stringify(dp.readFastPathStats())}` : '';
  return (
    `${label}: tunnels loaded in ${loadMs.toFixed(0)} ms; drops ${JSON.stringify(drops)}; tun writes ` +
    `${diag.tun_write_packets}, tun write errors ${diag.tun_write_errors}, send errors ${diag.send_errors}${fast}`
  );
}

function printReport(rows: readonly Row[], notes: readonly string[]): void {
  const s = SETTINGS;
  console.log(
    `tsp-broker data plane benchmark: ${TUNNELS.join(' and ')} tunnels, traffic over ${s.trafficTunnels} of them, ` +
      `${s.seconds} s per run (middle ${s.seconds - 2 * s.settleSeconds} s measured), best of ${s.repeats}`,
  );
  console.log(
    `two-core: broker threads on CPU 0 (busy-poll ${SPIN_MICROS} µs, TUN writes by ${TUN_WRITES}), generator ` +
      `(native sendmmsg) on CPU ${GENERATOR_CPU}; one-core: broker threads (no busy-poll) and generator on CPU ` +
      `${GENERATOR_CPU}; the kernel's forwarding and the ebpf programs run in the sender's context (veth), on ` +
      `CPU ${GENERATOR_CPU}`,
  );
  console.log('baselines: decap = the broker forwarding the same datagrams as IPv4; encap = the broker forwarding');
  console.log('the same inner IPv6 packets as IPv6 (ratio = ours / kernel)');
  if (POOL_NEXTHOP !== '') console.log(`pools routed to tsp0 via ${POOL_NEXTHOP} (BENCH_POOL_NEXTHOP), not on-link`);
  console.log('');
  console.log(HEADER);
  for (const r of rows) console.log(formatRow(r));
  console.log('');
  for (const g of goals(rows)) console.log(g);
  for (const n of notes) console.log(n);
  console.log(
    "note: on veth the kernel forwards in the sender's context, so the kernel column is the generator's own " +
      "rate (gen kpps(k)); in our runs the generator's core also pays for what the data plane makes it do, so " +
      'gen kpps(ours) can be lower; ours/gen is the share of what it offered that the data plane forwarded ' +
      '(below 100 %: the data plane is the bottleneck).',
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench:dataplane needs root (namespaces, TUN, raw sockets)');
    process.exit(1);
  }
  for (const m of MODES) modeOptions(m); // unknown modes fail before anything is set up
  const topo = await Topology.create();
  process.once('uncaughtException', (e) => {
    console.error(e);
    topo.cleanupSync();
    process.exit(1);
  });
  let dp: NativeDataPlane | EbpfDataPlane | undefined;
  try {
    const places = await buildTopology(topo, Math.max(...TUNNELS));
    const rows: Row[] = [];
    const notes: string[] = [];
    for (const tunnels of TUNNELS) {
      for (const mode of MODES) {
        for (const driver of DRIVERS) {
          const options: NativeDataPlaneOptions = {
            netns: places.broker.name,
            listenAddress: BROKER_V4,
            port: TSP_PORT,
            routes: POOLS,
            tunWrites: TUN_WRITES,
            ...modeOptions(mode),
          };
          dp = driver === 'ebpf' ? new EbpfDataPlane(options) : new NativeDataPlane(options);
          await dp.start();
          for (const pool of POOL_NEXTHOP === '' ? [] : POOLS)
            await places.broker.ip('-6', 'route', 'replace', pool, 'via', POOL_NEXTHOP, 'dev', dp.tunName);
          const loadMs = loadTunnels(dp, tunnels);
          rows.push(...(await runConfig(SETTINGS, { driver, mode, tunnels }, places)));
          notes.push(describeDataPlane(dp, `${driver} ${mode} ${tunnels}`, loadMs));
          await dp.close();
          dp = undefined;
        }
      }
    }
    printReport(rows, notes);
  } finally {
    await dp?.close();
    await topo.cleanup();
  }
}

await main();
