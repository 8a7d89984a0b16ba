/** tspc's configuration: gogoc.conf files as gogoc users have them, flags over files, and errors that name the
 *  key (client/config.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerError } from '../../../src/errors.js';
import {
  DEFAULTS,
  GOGOC_KEYS,
  IGNORED_GOGOC_KEYS,
  TSPC_KEYS,
  parseConfText,
  parseServer,
  resolveConfig,
} from '../../../src/client/config.js';

/** gogoc.conf.in's settings (1.2), filled in the way the recordings' lab client was. */
const GOGOC_CONF = `
# gogoCLIENT configuration
userid=bob
passwd=hunter2
server=192.0.2.1:3653
auth_method=digest-md5
host_type=router
prefixlen=56
if_prefix=eth1
dns_server=
gogoc_dir=/etc/gogoc
auto_retry_connect=yes
retry_delay=30
retry_delay_max=300
keepalive=yes
keepalive_interval=30
tunnel_mode=v6udpv4
if_tunnel_v6v4=sit1
if_tunnel_v6udpv4=tun
if_tunnel_v4v6=sit0
client_v4=auto
client_v6=auto
template=linux
proxy_client=no
broker_list=/var/lib/gogoc/tsp-broker-list.txt
last_server=/var/lib/gogoc/tsp-last-server.txt
always_use_same_server=no
log_stderr=1
log_filename=/var/log/gogoc/gogoc.log
log_rotation=yes
log_rotation_size=32
log_rotation_delete=no
syslog_facility=USER
`;

function problems(...layers: Record<string, string>[]): string {
  try {
    resolveConfig(...layers);
  } catch (e) {
    assert.ok(e instanceof BrokerError && e.code === 'CFG_INVALID');
    return e.message;
  }
  return '';
}

test('a whole gogoc.conf is accepted; its keys mean what they meant to gogoc', () => {
  const { raw, problems: p } = parseConfText(GOGOC_CONF, 'gogoc.conf');
  assert.deepEqual(p, []);
  const { config, warnings } = resolveConfig(raw);
  assert.deepEqual(config.server, { host: '192.0.2.1', port: 3653, text: '192.0.2.1:3653' });
  assert.equal(config.userid, 'bob');
  assert.equal(config.authMethod, 'digest-md5');
  assert.equal(config.hostType, 'router');
  assert.equal(config.prefixLen, 56);
  assert.equal(config.lanInterface, 'eth1');
  assert.equal(config.tunnelMode, 'v6udpv4');
  assert.equal(config.tunV6udpv4, 'tun');
  assert.equal(config.tunV6v4, 'sit1');
  assert.equal(config.keepaliveIntervalS, 30);
  assert.equal(config.autoRetryConnect, true);
  assert.deepEqual([config.retryDelayS, config.retryDelayMaxS], [30, 300]);
  assert.deepEqual(warnings, [
    'template=linux ignored: tspc configures the interface itself; put a script in hook= to run after up and down',
  ]);
});

test('unknown and invalid keys are errors naming the key; every problem is listed at once', () => {
  const msg = problems({ server: '192.0.2.1', colour: 'blue', keepalive: 'maybe', prefixlen: '65', retry_delay: '-1' });
  assert.match(msg, /^colour: unknown key$/m);
  assert.match(msg, /^keepalive: must be yes or no \(got "maybe"\)$/m);
  assert.match(msg, /^prefixlen: must be a whole number from 0 to 64/m);
  assert.match(msg, /^retry_delay: must be a whole number/m);
  assert.match(problems({}), /^server: is required/m);
  assert.match(problems({ server: '[2001:db8::1]' }), /^server: an IPv6 server is for tunnel_mode=v4v6/m);
  assert.match(problems({ server: '192.0.2.1', tunnel_mode: 'v4v6' }), /^server: tunnel_mode=v4v6 runs TSP over IPv6/m);
  assert.match(problems({ server: '[2001:db8::zz]' }), /^server: "\[2001:db8::zz\]" is not host/m);
  assert.match(problems({ server: 'x', tunnel_mode: 'v4v6', host_type: 'router' }), /^host_type: router mode is not/m);
  assert.match(problems({ server: 'x', client_v6: '192.0.2.1' }), /^client_v6: must be auto or an IPv6/m);
  const v4v6 = resolveConfig({ server: '[2001:db8::1]:4000', tunnel_mode: 'v4v6', client_v6: '2001:db8::2' }).config;
  assert.deepEqual(v4v6.server, { host: '2001:db8::1', port: 4000, text: '[2001:db8::1]:4000' });
  assert.equal(v4v6.tunnelMode, 'v4v6');
  assert.equal(v4v6.clientV6, '2001:db8::2');
  assert.equal(v4v6.tunV4v6, 'tsp4in6');
  assert.match(problems({ server: 'x', auth_method: 'passdss-3des-1', userid: 'u' }), /passdss-3des-1 is proprietary/);
  assert.match(problems({ server: 'x', auth_method: 'plain' }), /^userid: required for auth_method plain$/m);
  assert.match(problems({ server: 'x', tunnel_mode: 'v6udpv4', transport: 'tcp' }), /^transport: v6udpv4 runs over/m);
  assert.match(problems({ server: 'x', if_tunnel_v6v4: 'a name that is far too long' }), /^if_tunnel_v6v4: /m);
  assert.match(problems({ server: 'x', proxy_client: 'yes' }), /proxy_client: yes is not supported/);
  assert.match(problems({ server: 'x', client_v4: '300.1.1.1' }), /^client_v4: must be auto or an IPv4/m);
  assert.match(problems({ server: 'x', retry_delay: '60', retry_delay_max: '30' }), /retry_delay_max: must be ≥/);
  assert.match(
    problems({ server: 'x', ra: 'dnsmasq' }),
    /^ra: must be one of auto, radvd, builtin, off \(got "dnsmasq"\) \(router advertisements/m,
  );
});

test('syntax errors name the file and line', () => {
  const { problems: p } = parseConfText('server=x\nthis line has no equals\n', 'my.conf');
  assert.deepEqual(p, ['my.conf:2: expected key=value, got "this line has no equals"']);
});

test('flags (a later layer) override the file; auth_method defaults to any with a userid, anonymous without', () => {
  assert.equal(resolveConfig({ server: 'x' }).config.authMethod, 'anonymous');
  assert.equal(resolveConfig({ server: 'x', userid: 'u' }).config.authMethod, 'any');
  const { config } = resolveConfig(
    { server: 'a', keepalive_interval: '30' },
    { keepalive_interval: '5', server: 'b:99' },
  );
  assert.equal(config.keepaliveIntervalS, 5);
  assert.deepEqual(config.server, { host: 'b', port: 99, text: 'b:99' });
  assert.equal(config.defaultRoute, true, 'on by default, as gogoc');
  assert.equal(resolveConfig({ server: 'x', default_route: 'no' }).config.defaultRoute, false);
  assert.equal(config.ra, 'auto', 'radvd when installed, else the builtin announcer');
  for (const ra of ['radvd', 'builtin', 'off', 'OFF'])
    assert.equal(resolveConfig({ server: 'x', ra }).config.ra, ra.toLowerCase());
});

test('the key lists are disjoint, and every kept or tspc key has a default', () => {
  const all = [...GOGOC_KEYS, ...IGNORED_GOGOC_KEYS, ...TSPC_KEYS];
  assert.equal(new Set(all).size, all.length);
  for (const k of [...GOGOC_KEYS, ...TSPC_KEYS]) assert.ok(k in DEFAULTS, k);
  assert.deepEqual(parseServer('tb.example.net'), { host: 'tb.example.net', port: 3653, text: 'tb.example.net' });
  assert.equal(typeof parseServer('host:99999'), 'string');
});

test('dns_server: colon-separated name servers for reverse-DNS delegation, checked as the broker checks them', () => {
  const { raw } = parseConfText(`${GOGOC_CONF}\ndns_server=NS1.Example.NET:ns2.example.net`, 'gogoc.conf');
  assert.deepEqual(resolveConfig(raw).config.dnsServers, ['ns1.example.net', 'ns2.example.net']);
  const none = resolveConfig(parseConfText(GOGOC_CONF, 'gogoc.conf').raw).config;
  assert.deepEqual(none.dnsServers, [], 'empty: none asked for');
  assert.match(
    problems({ server: '192.0.2.1', dns_server: '192.0.2.53' }),
    /^dns_server: name server "192\.0\.2\.53"/m,
  );
  assert.match(
    problems({ server: '192.0.2.1', dns_server: 'ns.1.0.8.b.d.0.1.0.0.2.ip6.arpa' }),
    /^dns_server: .*reverse tree/m,
  );
});
