/** Reverse-DNS delegation from the REST API and the /me page, against a real Knot DNS server (test/helpers/knot.ts)
 *  and a real broker: an operator sets an account's name servers before it has a prefix and they are published
 *  at its first router-mode session; an account holder changes them on /me (form with CSRF) and through
 *  /api/v1/me; bad names are 400, too many changes 429, a broker without reverseDns 409; every change is
 *  audited; deleting the account withdraws the delegation. */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import ipaddr from 'ipaddr.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { reverseZoneNames } from '../../src/dns/reverse.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { eventuallyAsync } from '../helpers/broker-lab.js';
import { haveKnot, startKnot, type Knot } from '../helpers/knot.js';
import { runSession } from '../helpers/tsp.js';
import { login, type WebLogin } from './session.js';

const ZONE = '0.f.8.b.d.0.1.0.0.2.ip6.arpa';
const KEY = { name: 'tsp-broker', algorithm: 'hmac-sha256' as const, secret: Buffer.alloc(32, 3).toString('base64') };

describe('reverse DNS from the API and /me', { skip: haveKnot() ? false : 'needs knotd and kdig' }, () => {
  let knot: Knot;
  let b: TestBroker;
  let app: FastifyInstance;
  let admin: WebLogin;
  let alice: WebLogin;

  before(async () => {
    knot = await startKnot({ zone: ZONE, key: KEY });
    b = await startTestBroker({
      admin: { enabled: false },
      reverseDns: { server: '127.0.0.1', port: knot.port, zone: ZONE, tsig: KEY, changesPerHour: 3 },
    });
    app = await buildAdminApp(b);
    await b.addUser('root', 'root-password', 'admin');
    await b.addUser('alice', 'alice-password');
    admin = await login(app, 'root', 'root-password');
    alice = await login(app, 'alice', 'alice-password');
  });
  after(async () => {
    await app?.close();
    await b?.stop();
    await knot?.stop();
  });

  const asAdmin = (method: 'GET' | 'PUT', url: string, payload?: object) =>
    app.inject({
      method,
      url: `/api/v1${url}`,
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
      ...(payload ? { payload } : {}),
    });
  const session = () =>
    runSession({
      transport: 'udp',
      port: b.ports.udp,
      auth: { mechanism: 'PLAIN', username: 'alice', password: 'alice-password' },
      prefixLength: 56,
    });

  it('an operator sets them before the account has a prefix; its first router session publishes them', async () => {
    const set = await asAdmin('PUT', '/accounts/alice/reverse-dns', { servers: ['ns1.example.net'] });
    assert.equal(set.statusCode, 200, set.body);
    assert.deepEqual(set.json(), { servers: ['ns1.example.net'], published: [], error: null, prefix: null });

    const s = await session();
    assert.equal(s.createStatus, 200);
    const [name] = reverseZoneNames(s.offer!.prefix!.address, 56);
    assert.deepEqual(await knot.ns(name!), ['ns1.example.net']);
    const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: { cookie: admin.cookie } });
    assert.match(metrics.body, /^tsp_reverse_dns_updates_total\{result="ok"\} [1-9]/m, 'the update is counted');
    const got = await asAdmin('GET', '/accounts/alice/reverse-dns');
    assert.deepEqual(got.json(), {
      servers: ['ns1.example.net'],
      published: [name],
      error: null,
      prefix: `${ipaddr.parse(s.offer!.prefix!.address).toString()}/56`,
    });
  });

  it('the account holder changes them on /me, with the form and with the API; bad input is refused', async () => {
    const name = (await asAdmin('GET', '/accounts/alice/reverse-dns')).json<{ published: string[] }>().published[0]!;
    const form = (fields: Record<string, string>, cookie = alice.cookie) =>
      app.inject({
        method: 'POST',
        url: '/me/reverse-dns',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams(fields).toString(),
      });
    assert.equal((await form({ servers: 'ns2.example.net' })).statusCode, 403, 'no CSRF token, no change');
    const posted = await form({ _csrf: alice.csrf, servers: 'ns2.example.net\r\nns3.example.net' });
    assert.equal(posted.statusCode, 303, posted.body);
    assert.deepEqual(await knot.ns(name), ['ns2.example.net', 'ns3.example.net']);
    const page = await app.inject({ method: 'GET', url: '/me', headers: { cookie: alice.cookie } });
    assert.match(
      page.body,
      /id="rdns-state">\s*Delegated: <code>[0-9a-f.]+ip6\.arpa<\/code> to <code>ns2\.example\.net, ns3/,
    );

    const put = (servers: unknown) =>
      app.inject({
        method: 'PUT',
        url: '/api/v1/me/reverse-dns',
        headers: { cookie: alice.cookie, 'x-csrf-token': alice.csrf },
        payload: { servers },
      });
    const bad = await put(['ns.1.0.8.b.d.0.1.0.0.2.ip6.arpa']);
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json<{ message: string }>().message, /inside a reverse tree/);
    assert.equal((await put(undefined)).statusCode, 400, 'servers missing');
    assert.equal((await put(['ns4.example.net'])).statusCode, 200);
    assert.deepEqual(await knot.ns(name), ['ns4.example.net']);

    // the fourth change in the hour (one by the operator, two here) is refused, and DNS keeps the last one
    const limited = await put(['ns5.example.net']);
    assert.equal(limited.statusCode, 429, limited.body);
    assert.deepEqual(await knot.ns(name), ['ns4.example.net']);

    const audit = await asAdmin('GET', '/audit?action=account.rdns');
    const actions = audit.json<{ items: { action: string; target: string }[] }>().items;
    assert.equal(actions.filter((a) => a.action === 'account.rdns' && a.target === 'alice').length, 3);
  });

  it('deleting the account withdraws its delegation', async () => {
    const name = (await asAdmin('GET', '/accounts/alice/reverse-dns')).json<{ published: string[] }>().published[0]!;
    const del = await app.inject({
      method: 'DELETE',
      url: '/api/v1/accounts/alice',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    });
    assert.equal(del.statusCode, 204, del.body);
    await eventuallyAsync(async () => (await knot.ns(name)).length === 0, 'the NS records are gone', 10_000);
  });

  it('a broker without reverseDns answers 409 and shows no card', async () => {
    const plain = await startTestBroker({ admin: { enabled: false } });
    const app2 = await buildAdminApp(plain);
    try {
      await plain.addUser('bob', 'bob-password');
      const bob = await login(app2, 'bob', 'bob-password');
      const r = await app2.inject({
        method: 'PUT',
        url: '/api/v1/me/reverse-dns',
        headers: { cookie: bob.cookie, 'x-csrf-token': bob.csrf },
        payload: { servers: ['ns1.example.net'] },
      });
      assert.equal(r.statusCode, 409);
      const page = await app2.inject({ method: 'GET', url: '/me', headers: { cookie: bob.cookie } });
      assert.doesNotMatch(page.body, /Reverse DNS/);
    } finally {
      await app2.close();
      await plain.stop();
    }
  });
});
