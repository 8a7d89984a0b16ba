/** tspc in router mode configures its LAN: the real `tspc` (bin/tspc.js) in a router namespace behind the lab's
 *  NAT, against a real `tsp-broker serve --dataplane native` (test/helpers/broker-lab.ts), with a LAN host
 *  namespace on a veth behind it that has no static address, only accept_ra and SLAAC:
 *
 *    once with radvd (Debian's `radvd`, chosen by ra=auto since it is installed) and once with tspc's own
 *    announcer (ra=builtin):
 *    the LAN host gets an address in the delegated prefix's first /64 and a default route from the RAs, and
 *    pings the internet host through the tunnel; `rdisc6` (Debian's ndisc6) on the LAN host solicits an RA and
 *    shows the prefix, the MTU and the offer's resolver in the RDNSS option; `tspc status` says who announces
 *    what. Then the tunnel is lost (the router's UDP to the broker cut until tspc notices): the old announcer's
 *    final RA (router lifetime 0) takes the LAN host's default route away; the new tunnel gets its own
 *    announcer (a new radvd), and the LAN host its default route back and the internet again. On SIGTERM the
 *    final RA takes the route away again, and radvd is gone with its files.
 *
 *  Every wait is bounded; the lab (processes, namespaces, files) is removed in after() and at process exit.
 *  Needs root, /dev/net/tun, radvd and rdisc6; skipped otherwise. */

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { BrokerLab, INET_HOST, eventuallyAsync } from '../helpers/broker-lab.js';
import { findProgram } from '../../src/client/ra-radvd.js';
import type { Netns, NetnsProcess } from '../helpers/netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSPC = path.join(ROOT, 'bin/tspc.js');
const PASSWORD = 'correct horse battery';
/** The resolver the broker writes into offers (pools.dnsServer); a documentation address. */
const RESOLVER = '2001:db8:100::53';
const UP_TIMEOUT_MS = 25_000;
const missing = ['radvd', 'rdisc6'].filter((p) => !findProgram(p));
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun') && missing.length === 0;
const skip = canRun ? false : `needs root, /dev/net/tun, radvd and rdisc6 (missing: ${missing.join(', ') || 'none'})`;

/** The LAN host's global addresses that finished duplicate address detection, and how each was configured. */
async function globalAddresses(ns: Netns): Promise<{ address: string; dynamic: boolean }[]> {
  const json = JSON.parse(await ns.ip('-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global', '-tentative')) as {
    addr_info?: { local: string; dynamic?: boolean }[];
  }[];
  return (json[0]?.addr_info ?? []).map((a) => ({ address: a.local, dynamic: a.dynamic === true }));
}

/** Cuts the router's TSP/UDP flow until tspc declares the tunnel lost and the LAN host has lost its default
 *  route (the old announcer's final RA), then lets the new session through; resolves once the LAN host has a
 *  default route again (the new tunnel's RAs). */
async function reconnect(router: Netns, proc: NetnsProcess, lanHost: Netns): Promise<void> {
  await router.nft(
    'table inet cut {\n  chain output { type filter hook output priority 0; udp dport 3653 drop; }\n}\n',
  );
  await eventuallyAsync(async () => proc.stderr.includes('tunnel lost'), 'tspc to lose the tunnel', 30_000);
  // torn down (the final RA sent) before "tunnel lost" is logged; no new tunnel while the flow is cut
  await eventuallyAsync(
    async () => (await lanHost.ip('-6', 'route', 'show', 'default')).trim() === '',
    'the default route withdrawn with the lost tunnel',
    10_000,
  );
  await router.run('nft', ['delete', 'table', 'inet', 'cut']);
  await eventuallyAsync(
    async () => proc.stdout.split('\n').filter((l) => l.includes('tunnel up:')).length === 2,
    'a second tunnel',
    30_000,
  );
  await eventuallyAsync(
    async () => /proto ra/.test(await lanHost.ip('-6', 'route', 'show', 'default')),
    'the default route announced again',
    15_000,
  );
}

describe('tspc router mode: router advertisements on the LAN', { skip }, () => {
  let lab: BrokerLab;

  before(async () => {
    lab = await BrokerLab.create({ pools: { dnsServer: RESOLVER } });
    for (const u of ['ra-radvd', 'ra-builtin']) await lab.addUser(u, PASSWORD);
    await lab.startBroker();
  });

  after(async () => {
    await lab?.cleanup();
  });

  async function lanBehindRouter(mode: 'radvd' | 'builtin'): Promise<void> {
    const router = await lab.natClient(`r-${mode}`);
    const lanHost = await lab.topo.namespace(`lan-${mode}`);
    await lab.topo.link(router.ns, [], lanHost, [], { aName: 'lan0', bName: 'eth0' });
    await lanHost.sysctl('net.ipv6.conf.eth0.accept_ra', 1);
    await lanHost.sysctl('net.ipv6.conf.eth0.autoconf', 1);
    const runDir = path.join(lab.dir, mode); // tspc puts radvd's files next to its status file
    const statusFile = path.join(runDir, 'status.json');
    const proc = router.ns.spawn(process.execPath, [
      TSPC,
      ...['--server', router.server, '-m', 'v6udpv4', '-u', `ra-${mode}`, '--password-stdin'],
      ...[
        '--router',
        '--prefixlen',
        '56',
        '--lan',
        'lan0',
        '--ra',
        mode === 'radvd' ? 'auto' : 'builtin',
        '--status-file',
        statusFile,
      ],
      ...['--keepalive-interval', '2', '--retry-delay', '1', '--retry-delay-max', '2', '--log-level', 'debug'],
    ]);
    proc.child.stdin?.end(`${PASSWORD}\n`);
    await proc.waitFor('tunnel up:', UP_TIMEOUT_MS);
    const prefix = /tunnel up: .*, prefix (\S+)\/56/.exec(proc.stdout)?.[1];
    assert.ok(prefix, `a /56 was delegated: ${proc.stdout}`);
    const lan64 = ipaddr.IPv6.parse(prefix).toByteArray().slice(0, 8).join(',');
    const inLan64 = (a: string) => ipaddr.IPv6.parse(a).toByteArray().slice(0, 8).join(',') === lan64;
    if (mode === 'radvd') assert.match(proc.stdout, /radvd announces .* on lan0 pid=\d+/);
    else assert.match(proc.stdout, /builtin router advertisements/);

    // SLAAC: an address of the first /64, configured from the RA (dynamic), no static one ever added
    let slaac: string | undefined;
    await eventuallyAsync(
      async () =>
        (slaac = (await globalAddresses(lanHost)).find((a) => a.dynamic && inLan64(a.address))?.address) !== undefined,
      `a SLAAC address in ${prefix}/64 on the LAN host`,
      20_000,
    );
    assert.match(await lanHost.ip('-6', 'route', 'show', 'default'), /via fe80::\S+ dev eth0 proto ra/);
    assert.equal(await lab.ping(lanHost, INET_HOST), true, 'LAN host -> internet through the tunnel');
    assert.equal(await lab.ping(lab.inet, slaac!), true, 'internet -> LAN host SLAAC address');

    // what an RA carries, as a host's own tool decodes it, in answer to its solicitation
    const rdisc = await lanHost.exec('rdisc6', ['-1', '-w', '4000', '-r', '3', 'eth0'], { timeoutMs: 20_000 });
    assert.equal(rdisc.code, 0, `rdisc6 got an RA: ${rdisc.stdout}${rdisc.stderr}`);
    assert.match(rdisc.stdout, new RegExp(`Prefix\\s*:\\s*${ipaddr.IPv6.parse(prefix).toString()}/64`));
    assert.match(rdisc.stdout, /MTU\s*:\s*1280 bytes/);
    assert.match(rdisc.stdout, new RegExp(`Recursive DNS server\\s*:\\s*${RESOLVER}\\b`));
    assert.match(rdisc.stdout, /Router lifetime\s*:\s*1800 /);

    const status = await router.ns.run(process.execPath, [TSPC, 'status', '--status-file', statusFile]);
    const lan = `${ipaddr.IPv6.parse(prefix).toString()}/64 on lan0, router advertisements: ${mode}`;
    assert.match(status, new RegExp(`^lan: +${lan.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));

    await reconnect(router.ns, proc, lanHost);
    assert.equal(await lab.ping(lanHost, INET_HOST), true, 'LAN host -> internet through the new tunnel');
    const radvdPids = [...proc.stdout.matchAll(/radvd announces .* pid=(\d+)/g)].map((m) => Number(m[1]));
    if (mode === 'radvd') {
      assert.equal(radvdPids.length, 2, 'a new radvd for the new tunnel');
      assert.throws(() => process.kill(radvdPids[0]!, 0), /ESRCH/, "the first tunnel's radvd stopped with it");
    }
    const radvdPid = radvdPids.at(-1);

    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0, `tspc stopped cleanly: ${proc.stderr}`);
    // the final RA (router lifetime 0) withdraws the LAN host's default route at once
    await eventuallyAsync(
      async () => (await lanHost.ip('-6', 'route', 'show', 'default')).trim() === '',
      'the default route withdrawn by the final RA',
      10_000,
    );
    if (radvdPid !== undefined) assert.throws(() => process.kill(radvdPid, 0), /ESRCH/, 'radvd stopped with tspc');
    assert.deepEqual(
      readdirSync(runDir).filter((f) => f.startsWith('radvd-')),
      [],
      "radvd's configuration and pid file removed",
    );
  }

  it('with radvd: a LAN host configures itself by SLAAC, gets the resolver by RDNSS, reaches the internet', () =>
    lanBehindRouter('radvd'));

  it('with the builtin announcer: the same, without radvd', () => lanBehindRouter('builtin'));
});
