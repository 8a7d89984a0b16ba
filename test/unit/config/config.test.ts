import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultConfig, enabledMechanisms, parseConfig } from '../../../src/config/schema.js';
import { findConfigFile, loadConfig, STANDARD_CONFIG_FILE } from '../../../src/config/load.js';
import { BrokerError } from '../../../src/errors.js';

function problems(raw: unknown): string {
  try {
    parseConfig(raw);
    return '';
  } catch (e) {
    assert.ok(e instanceof BrokerError);
    assert.equal(e.code, 'CFG_INVALID');
    return e.message;
  }
}

test('the embedded defaults: UDP and TCP on 0.0.0.0:3653, hybrid, SQLite under ./data, generated pools', () => {
  const c = defaultConfig();
  assert.deepEqual(c.listen, { address: '0.0.0.0', address6: null, port: 3653, udp: true, tcp: true });
  assert.equal(c.pools.ipv4, null, 'no v4v6 pool unless configured');
  assert.equal(c.auth.mode, 'hybrid');
  assert.equal(c.store.path, './data/tsp-broker.db');
  assert.equal(c.pools.link, null);
  assert.equal(c.pools.delegation, null);
  assert.deepEqual(c.pools.prefixLen, { default: 56, min: 48, max: 64 });
  assert.deepEqual(enabledMechanisms(c), ['DIGEST-MD5', 'ANONYMOUS'], 'PLAIN is opt-in');
});

test('errors name the key and the problem', () => {
  assert.match(problems({ listen: { port: 70000 } }), /^listen\.port: /m);
  assert.match(problems({ listen: { prot: 1 } }), /^listen\.prot: unknown key$/m);
  assert.match(problems({ bogus: true }), /^bogus: unknown key$/m);
  assert.match(problems({ auth: { mode: 'open' } }), /^auth\.mode: /m);
  assert.match(problems({ pools: { link: '10.0.0.0/8' } }), /^pools\.link: must be an IPv6 prefix/m);
  assert.match(
    problems({ pools: { prefixLen: { min: 60, max: 50 } } }),
    /^pools\.prefixLen\.min: must be ≤ pools\.prefixLen\.max$/m,
  );
  assert.match(problems({ pools: { delegation: '2001:db8::/56' } }), /^pools\.delegation: a \/56 cannot hold a \/48/m);
  assert.match(
    problems({ tunnels: { keepalive: { default: 1000, max: 300 } } }),
    /^tunnels\.keepalive\.default: must lie within/m,
  );
  assert.match(problems({ auth: { mode: 'authenticated', digestMd5: false } }), /^auth: mode 'authenticated' needs/m);
  assert.match(problems({ store: { driver: 'postgres' } }), /^store\.url: is required/m);
  assert.match(problems({ serverIpv4: '2001:db8::1' }), /^serverIpv4: must be a dotted-quad IPv4 address$/m);
  const many = problems({ listen: { port: -1 }, dataplane: { tun: 'way-too-long-interface-name' } }).split('\n');
  assert.equal(many.length, 2, 'every problem is listed');
});

test('dataplane.driver: auto by default; ebpf, native and memory on request; anything else names the choices', () => {
  assert.equal(defaultConfig().dataplane.driver, 'auto');
  for (const driver of ['ebpf', 'native', 'memory'] as const)
    assert.equal(parseConfig({ dataplane: { driver } }).dataplane.driver, driver);
  assert.match(problems({ dataplane: { driver: 'xdp' } }), /^dataplane\.driver: .*ebpf.*native.*memory.*auto/m);
});

test('pools.linkMode: per-account-64 by default, shared-64 on request; a pool longer than /64 only shared', () => {
  assert.equal(defaultConfig().pools.linkMode, 'per-account-64');
  assert.equal(parseConfig({ pools: { linkMode: 'shared-64' } }).pools.linkMode, 'shared-64');
  assert.match(problems({ pools: { linkMode: 'shared-128' } }), /^pools\.linkMode: .*per-account-64.*shared-64/m);
  assert.match(problems({ pools: { linkMode: 64 } }), /^pools\.linkMode: /m);
  // a single /64, or a /124 inside one, shared by many tunnels: only in shared-64 mode
  for (const link of ['2001:db8:f00::/64', '2001:db8:f00::/124'])
    assert.equal(parseConfig({ pools: { link, linkMode: 'shared-64' } }).pools.link, link);
  assert.equal(problems({ pools: { link: '2001:db8:f00::/64' } }), '', 'one /64 for one owner is allowed');
  assert.match(
    problems({ pools: { link: '2001:db8:f00::/80' } }),
    /^pools\.link: a \/80 holds no \/64 for pools\.linkMode 'per-account-64'/m,
  );
  assert.match(
    problems({ pools: { link: '2001:db8:f00::/125', linkMode: 'shared-64' } }),
    /^pools\.link: must be an IPv6 prefix in CIDR form with a length from 16 to 124$/m,
  );
});

test('v4v6: offered only when listed, and then pools.ipv4 is required; IPv6 keys take IPv6 only', () => {
  assert.deepEqual(defaultConfig().tunnels.types, ['v6v4', 'v6udpv4'], 'v4v6 is opt-in');
  const c = parseConfig({
    tunnels: { types: ['v6udpv4', 'v4v6'] },
    pools: { ipv4: '198.51.100.0/24' },
    listen: { address6: '2001:db8::1' },
    serverIpv6: '2001:db8::1',
  });
  assert.deepEqual(c.tunnels.types, ['v6udpv4', 'v4v6']);
  assert.equal(c.pools.ipv4, '198.51.100.0/24');
  assert.match(
    problems({ tunnels: { types: ['v4v6'] } }),
    /^pools\.ipv4: is needed when tunnels\.types offers 'v4v6'/m,
  );
  assert.match(problems({ tunnels: { types: ['v4v4'] } }), /^tunnels\.types\.0: /m);
  for (const ipv4 of ['198.51.100.0/31', '198.51.100.0', '2001:db8::/64', '198.51.100.256/24', '198.51.100.0/7'])
    assert.match(
      problems({ pools: { ipv4 } }),
      /^pools\.ipv4: must be an IPv4 prefix in CIDR form with a length from 8 to 30$/m,
      ipv4,
    );
  assert.match(problems({ tunnels: { types: ['v4v6'] } }), /^listen\.address6: is needed when tunnels\.types offers/m);
  for (const bad of ['192.0.2.1', '::', 'ff02::1', 'fe80::1', 'fe80::1%eth0', '::ffff:192.0.2.1']) {
    assert.match(problems({ listen: { address6: bad } }), /^listen\.address6: must be a specific unicast IPv6/m, bad);
    assert.match(problems({ serverIpv6: bad }), /^serverIpv6: must be a specific unicast IPv6/m, bad);
  }
  assert.match(
    problems({ pools: { ipv4: '100.64.0.5/16' } }),
    /^pools\.ipv4: has host bits set: the network is 100\.64\.0\.0\/16$/m,
  );
  for (const ipv4 of ['127.0.0.0/8', '224.0.0.0/4', '0.0.0.0/8', '169.254.0.0/16', '240.0.0.0/8'])
    assert.match(problems({ pools: { ipv4 } }), /^pools\.ipv4: is not unicast space/m, ipv4);
  assert.equal(problems({ pools: { ipv4: '100.64.0.0/10' } }), '', 'shared address space behind NAT44');
});

test('loadConfig: a file, flags over it, and file errors that name the file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  try {
    const f = path.join(dir, 'broker.json');
    writeFileSync(f, JSON.stringify({ listen: { port: 4000 }, auth: { realm: 'example' } }));
    const c = loadConfig(f, { 'listen.port': 5000, 'auth.mode': 'anonymous', 'store.path': undefined });
    assert.equal(c.listen.port, 5000, 'flags win');
    assert.equal(c.auth.realm, 'example', 'the file fills the rest');
    assert.equal(c.auth.mode, 'anonymous');
    writeFileSync(f, '{ "listen": { "port": 4000 }, }');
    assert.throws(
      () => loadConfig(f),
      (e: BrokerError) => e.code === 'CFG_FILE' && e.message.includes('not valid JSON') && e.message.includes(f),
    );
    assert.throws(
      () => loadConfig(path.join(dir, 'missing.json')),
      (e: BrokerError) => e.code === 'CFG_FILE' && /cannot read/.test(e.message),
    );
    writeFileSync(f, JSON.stringify({ pools: { delegation: 'fd00::/70' } }));
    assert.throws(
      () => loadConfig(f),
      (e: BrokerError) => e.code === 'CFG_INVALID' && e.message.includes(f) && e.message.includes('pools.delegation'),
    );
    writeFileSync(f, '[]');
    assert.throws(() => loadConfig(f), /must hold a JSON object/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig: relative paths in a file are relative to its directory; flags and the default stay as given', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  try {
    const f = path.join(dir, 'sub', 'broker.json');
    mkdirSync(path.dirname(f));
    writeFileSync(
      f,
      JSON.stringify({
        store: { path: 'db/broker.db' },
        admin: { tls: { cert: 'tls/cert.pem', key: '/abs/key.pem' } },
        selfService: { tls: { cert: '../c.pem', key: 'k.pem' } },
      }),
    );
    const c = loadConfig(f);
    assert.equal(c.store.path, path.join(dir, 'sub', 'db', 'broker.db'));
    assert.deepEqual(c.admin.tls, { cert: path.join(dir, 'sub', 'tls', 'cert.pem'), key: '/abs/key.pem' });
    assert.deepEqual(c.selfService.tls, { cert: path.join(dir, 'c.pem'), key: path.join(dir, 'sub', 'k.pem') });
    assert.equal(loadConfig(f, { 'store.path': 'flag.db' }).store.path, 'flag.db', 'a flag is relative to the cwd');
    writeFileSync(f, JSON.stringify({ store: { path: ':memory:' } }));
    assert.equal(loadConfig(f).store.path, ':memory:');
    assert.equal(loadConfig(undefined).store.path, './data/tsp-broker.db', 'no file: the default as it is');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('findConfigFile: --config wins; else TSP_BROKER_CONFIG or /etc/tsp-broker/config.json only when it exists', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  try {
    const std = path.join(dir, 'config.json');
    const env = { TSP_BROKER_CONFIG: std };
    assert.deepEqual(findConfigFile(undefined, env), { file: undefined, explicit: false, standard: std });
    writeFileSync(std, '{}');
    assert.deepEqual(findConfigFile(undefined, env), { file: std, explicit: false, standard: std });
    assert.equal(findConfigFile('other.json', env).file, path.resolve('other.json'));
    assert.equal(findConfigFile(undefined, {}).standard, STANDARD_CONFIG_FILE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reverseDns: off by default; its errors name the key, and the zone must hold the delegation pool', () => {
  assert.equal(defaultConfig().reverseDns, null);
  const rdns = {
    server: '192.0.2.53',
    zone: '8.b.d.0.1.0.0.2.ip6.arpa',
    tsig: { name: 'tsp-broker', secret: Buffer.alloc(32, 1).toString('base64') },
  };
  const ok = parseConfig({ pools: { delegation: '2001:db8:f000::/40' }, reverseDns: rdns });
  assert.deepEqual(
    [ok.reverseDns?.port, ok.reverseDns?.tsig.algorithm, ok.reverseDns?.maxNameServers],
    [53, 'hmac-sha256', 4],
  );
  const bad = (over: object, pools: object = { delegation: '2001:db8:f000::/40' }) =>
    problems({ pools, reverseDns: { ...rdns, ...over } });
  assert.match(bad({ server: 'dns.example.net' }), /^reverseDns\.server: must be an IPv4 or IPv6 address$/m);
  assert.match(bad({ zone: 'example.net' }), /^reverseDns\.zone: must be a zone under ip6\.arpa/m);
  assert.match(bad({ tsig: { ...rdns.tsig, secret: 'c2hvcnQ=' } }), /^reverseDns\.tsig\.secret: must be base64/m);
  assert.match(bad({ tsig: { ...rdns.tsig, algorithm: 'hmac-md5' } }), /^reverseDns\.tsig\.algorithm: /m);
  assert.match(bad({ zone: '9.b.d.0.1.0.0.2.ip6.arpa' }), /^reverseDns\.zone: does not contain the reverse names/m);
  assert.match(
    bad({ zone: '0.f.8.b.d.0.1.0.0.2.ip6.arpa' }, { delegation: '2001:db8:f000::/40', prefixLen: { min: 40 } }),
    /^reverseDns\.zone: a \/40 \(pools\.prefixLen\.min\) would be delegated at or above the zone's apex$/m,
  );
});

test('staticTunnels: the /nic/update limits are whole numbers from 1, and errors name the key', () => {
  assert.deepEqual(defaultConfig().staticTunnels, {
    updatesPerMinute: 20,
    changesPerHour: 30,
    endpointFromSource: true,
  });
  assert.match(problems({ staticTunnels: { endpointFromSource: 'yes' } }), /^staticTunnels\.endpointFromSource: /m);
  assert.match(problems({ staticTunnels: { updatesPerMinute: 0 } }), /^staticTunnels\.updatesPerMinute: /m);
  assert.match(problems({ staticTunnels: { changesPerHour: 2.5 } }), /^staticTunnels\.changesPerHour: /m);
  assert.match(problems({ staticTunnels: { changesPerHour: '30' } }), /^staticTunnels\.changesPerHour: /m);
  assert.match(problems({ staticTunnels: { perHour: 3 } }), /^staticTunnels\.perHour: unknown key$/m);
});
