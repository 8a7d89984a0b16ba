/** A static 6in4 tunnel kept current by Debian's ddclient, end to end: `tsp-broker serve` on each data-plane
 *  driver (native, and ebpf: the TC programs in front of the addon, which carry the tunnel and follow its endpoint's
 *  moves in their maps) and its self-service listener in the lab's broker namespace (test/helpers/broker-lab.ts), a "router"
 *  namespace with a direct link to it, and an IPv6 host on the "internet".
 *
 *    router 198.51.100.2/28, then .3 ── broker 198.51.100.1 (self-service :8081) ── inet 2001:db8:100::2
 *
 *  The operator creates the tunnel and an update key through the REST API. The router runs ddclient
 *  (protocol=dyndns2, its own config and cache files, in the foreground) with the key, and a 6in4 interface
 *  as a router's built-in one would: this kernel has no `sit` module, so the client end is the addon's
 *  protocol-41 encapsulator on a TUN device (dataplane/client-tunnel.ts, what tspc uses for v6v4), with the
 *  tunnel's addresses set by hand from what the API shows. ddclient's first update sets the endpoint and ping6
 *  works; the router's address changes and ping6 fails until ddclient's next update moves the endpoint, then
 *  works both ways from the new address; a forced update answers nochg; a kill -9 and restart of the broker
 *  keeps the tunnel. Needs root, /dev/net/tun and ddclient; skipped otherwise. */

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startClientTunnel, type ClientTunnel } from '../../src/dataplane/client-tunnel.js';
import {
  BrokerLab,
  INET_HOST,
  LAB_DRIVERS,
  canonical,
  eventuallyAsync,
  labSkip,
  type LabClient,
  type LabDriver,
} from '../helpers/broker-lab.js';
import { execCommand } from '../helpers/netns.js';

const DDCLIENT = '/usr/bin/ddclient';
/** Why a lab on `driver` with ddclient cannot run here, or false. */
const skipFor = (driver: LabDriver) => labSkip(driver) || (existsSync(DDCLIENT) ? false : 'needs ddclient');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SELF_SERVICE_PORT = 8081;
const HOSTNAME = 'home.rita';

interface StaticView {
  endpoint: string | null;
  tunnel: { clientIpv6: string; serverIpv6: string; serverIpv4: string; clientIpv4: string } | null;
}

for (const driver of LAB_DRIVERS) staticTunnel(driver);

function staticTunnel(driver: LabDriver): void {
  describe(`static 6in4 tunnel updated by ddclient (${driver})`, { skip: skipFor(driver) }, () => {
    let lab: BrokerLab;
    let router: LabClient;
    let token: string;
    let updateKey: string;
    let tunnel: ClientTunnel | undefined;

    /** The REST API, called inside the broker's namespace (its admin listener is on loopback there). */
    async function api(method: string, url: string, body?: object): Promise<unknown> {
      const script =
        `fetch('http://127.0.0.1:8080/api/v1${url}',{method:${JSON.stringify(method)},` +
        `headers:{authorization:'Bearer ${token}'${body ? `,'content-type':'application/json'` : ''}},` +
        `${body ? `body:${JSON.stringify(JSON.stringify(body))}` : ''}})` +
        `.then(async(r)=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text()})),` +
        `(e)=>{console.error(e);process.exit(1)})`;
      const out = JSON.parse(await lab.broker.run(process.execPath, ['-e', script])) as {
        status: number;
        body: string;
      };
      assert.ok(out.status < 300, `${method} ${url}: ${out.status} ${out.body}`);
      return out.body ? JSON.parse(out.body) : undefined;
    }

    /** ddclient in the router's namespace: one run in the foreground, its own config and cache in the lab's
     *  folder, the address read from the router's interface. Returns what it printed. */
    async function ddclient(extra: string[] = []): Promise<string> {
      const conf = path.join(lab.dir, 'ddclient.conf');
      writeFileSync(
        conf,
        [
          'daemon=0',
          'ssl=no',
          `pid=${path.join(lab.dir, 'ddclient.pid')}`,
          'usev4=ifv4, ifv4=to-broker',
          'min-interval=1s', // ddclient waits 30 s between updates by default
          'protocol=dyndns2',
          `server=${router.server}:${SELF_SERVICE_PORT}`,
          'login=rita',
          `password='${updateKey}'`,
          HOSTNAME,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      const args = ['-daemon=0', '-foreground', '-verbose', '-noquiet', '-file', conf];
      const r = await router.ns.exec(DDCLIENT, [...args, '-cache', path.join(lab.dir, 'ddclient.cache'), ...extra], {
        timeoutMs: 30_000,
      });
      const out = `${r.stdout}\n${r.stderr}`;
      if (process.env.TSP_TEST_DEBUG) console.error(out);
      return out;
    }

    /** `tsp-broker listening` comes before the admin and self-service listeners are up: wait for them too. */
    async function startBroker(): Promise<void> {
      await lab.startBroker();
      const probe = `fetch('http://127.0.0.1:8080/healthz').then(()=>fetch('http://127.0.0.1:${SELF_SERVICE_PORT}/login'))`;
      await eventuallyAsync(
        async () => (await lab.broker.exec(process.execPath, ['-e', probe])).code === 0,
        'the admin and self-service listeners',
      );
    }

    async function view(): Promise<StaticView> {
      return (await api('GET', '/accounts/rita/static-tunnel')) as StaticView;
    }

    /** The router's 6in4 interface, as its firmware would bring it up: protocol 41 to the broker, the tunnel's
     *  address, a default route into it. */
    async function bringUp6in4(v: StaticView): Promise<void> {
      tunnel?.close();
      tunnel = startClientTunnel({
        netns: router.ns.name,
        tunName: 'six0',
        type: 'v6v4',
        server: { address: v.tunnel!.serverIpv4, port: 3653 }, // no port in protocol 41: the addon checks it anyway
      });
      await router.ns.ip('link', 'set', 'dev', 'six0', 'mtu', '1280', 'up');
      await router.ns.ip('-6', 'addr', 'add', `${v.tunnel!.clientIpv6}/64`, 'dev', 'six0', 'nodad');
      await router.ns.ip('-6', 'route', 'add', 'default', 'dev', 'six0');
    }

    before(async () => {
      lab = await BrokerLab.create({
        selfService: { enabled: true, address: '0.0.0.0', port: SELF_SERVICE_PORT },
        dataplane: { driver },
      });
      await lab.addUser('rita', 'rita-password');
      const created = await execCommand(process.execPath, [
        path.join(ROOT, 'bin/tsp-broker.js'),
        'token',
        'create',
        'ops',
        '--config',
        lab.configPath,
      ]);
      assert.equal(created.code, 0, created.stderr);
      token = /tspb_[A-Za-z0-9_-]+/.exec(created.stdout)![0];
      router = await lab.directClient('router'); // before the start: on ebpf, its link is an uplink
      await startBroker();
    });

    after(async () => {
      tunnel?.close();
      await lab?.cleanup();
    });

    it("ddclient's first update makes the tunnel live at the router's address; ping6 works", async () => {
      await api('POST', '/accounts/rita/static-tunnel', { hostname: HOSTNAME });
      updateKey = ((await api('POST', '/accounts/rita/static-tunnel/update-key')) as { updateKey: string }).updateKey;
      assert.equal((await view()).tunnel, null, 'no endpoint yet: nothing live');
      const out = await ddclient();
      assert.match(out, /SUCCESS:.*home\.rita.*198\.51\.100\.2/, out);
      const v = await view();
      assert.equal(v.endpoint, router.ipv4);
      assert.equal(v.tunnel?.clientIpv4, router.ipv4);
      await bringUp6in4(v);
      assert.equal(await lab.ping(router.ns, INET_HOST), true, 'router -> internet through the tunnel');
    });

    it('a new router address: ping6 fails until ddclient moves the endpoint, then works both ways', async () => {
      const v = await view();
      await router.ns.ip('addr', 'del', `${router.ipv4}/28`, 'dev', 'to-broker');
      await router.ns.ip('addr', 'add', '198.51.100.3/28', 'dev', 'to-broker');
      await bringUp6in4(v); // the firmware brings its 6in4 up again on the new WAN address
      assert.equal(await lab.ping(router.ns, INET_HOST), false, 'the broker drops protocol 41 from an unknown address');
      const out = await ddclient();
      assert.match(out, /SUCCESS:.*home\.rita.*198\.51\.100\.3/, out);
      assert.equal((await view()).tunnel?.clientIpv4, '198.51.100.3');
      const tunWrites = await lab.tunWrites();
      const ten = ['-c', '10', '-i', '0.2'];
      assert.equal(await lab.ping(router.ns, INET_HOST, ten), true, 'router -> internet from the new address');
      const written = (await lab.tunWrites()) - tunWrites;
      // On ebpf the programs decapsulate from the moved endpoint (the router's own router solicitations and MLD
      // reports, multicast, may still reach the addon); on native the addon writes each echo into the TUN.
      if (driver === 'ebpf') assert.ok(written < 5, `the moved endpoint is in the maps: ${written} TUN writes`);
      else assert.ok(written >= 10, `${written} TUN writes`);
      assert.equal(await lab.ping(lab.inet, canonical(v.tunnel!.clientIpv6)), true, 'internet -> router');
      const audit = (await api('GET', '/audit?action=static.endpoint')) as { items: { detail: { to: string } }[] };
      assert.deepEqual(audit.items.map((e) => e.detail.to).sort(), ['198.51.100.2', '198.51.100.3']);
    });

    it('a forced update of the same address answers nochg', async () => {
      const out = await ddclient(['-force']);
      assert.match(out, /nochg/, out);
      assert.equal((await view()).tunnel?.clientIpv4, '198.51.100.3');
    });

    it('the tunnel survives kill -9 and a restart of the broker', async () => {
      await lab.killBroker();
      await startBroker();
      await eventuallyAsync(() => lab.ping(router.ns, INET_HOST), 'ping6 through the restored static tunnel', 30_000);
    });
  });
}
