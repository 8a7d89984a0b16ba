/** The static 6in4 tunnel in the web UI over real sockets: the account holder creates it on /me through the
 *  self-service listener, sets its endpoint, makes an update key (shown once, in that reply only) that then
 *  works for /nic/update, and removes it; the operator sees and sets it on the account's page. The forms need
 *  the session's CSRF token. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

let b: TestBroker;
after(async () => {
  await b?.stop();
});

function cookieOf(r: Response, name: string): string | undefined {
  for (const c of r.headers.getSetCookie()) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c);
    if (m) return m[1];
  }
  return undefined;
}

interface Browser {
  base: string;
  cookie: string;
}

async function signIn(base: string, username: string, password: string): Promise<Browser> {
  const form = await fetch(`${base}/login`);
  const csrfCookie = cookieOf(form, 'tspb_login_csrf');
  const field = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  assert.ok(csrfCookie && field);
  const r = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: `tspb_login_csrf=${csrfCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: field, username, password, next: '' }).toString(),
  });
  assert.equal(r.status, 303);
  return { base, cookie: `tspb_session=${cookieOf(r, 'tspb_session')}` };
}

/** The page a form's 303 leads to (with its message in the query). */
async function follow(br: Browser, r: Response): Promise<string> {
  assert.equal(r.status, 303, await r.clone().text());
  return get(br, r.headers.get('location')!);
}

async function get(br: Browser, path: string): Promise<string> {
  const r = await fetch(`${br.base}${path}`, { headers: { cookie: br.cookie } });
  assert.equal(r.status, 200, path);
  return r.text();
}

/** Posts a form the way the page does: with the CSRF token the page carries (unless `csrf` says otherwise). */
async function post(br: Browser, path: string, fields: Record<string, string>, csrf?: string): Promise<Response> {
  const page = await get(br, path.startsWith('/me') ? '/me' : path.replace(/\/static-tunnel.*$/, ''));
  const token = csrf ?? /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
  return fetch(`${br.base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: br.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: token, ...fields }).toString(),
  });
}

test('an account holder runs a static tunnel from /me on the self-service listener', async () => {
  b = await startTestBroker({
    admin: { enabled: true, port: 0, publicTspHost: 'tsp.example.net' },
    selfService: { enabled: true, address: '127.0.0.1', port: 0 },
    // the update comes from 127.0.0.1 and names a documentation address
    staticTunnels: { endpointFromSource: false },
  });
  await b.addUser('holder', 'holder-password');
  await b.addUser('root', 'root-password', 'admin');
  const me = await signIn(`http://127.0.0.1:${b.selfService!.port}`, 'holder', 'holder-password');

  assert.match(await get(me, '/me'), /id="create-static"/, 'a create form while there is none');
  const forged = await post(me, '/me/static-tunnel', { hostname: 'x' }, 'not-the-token');
  assert.equal(forged.status, 403, 'no CSRF token, no tunnel');
  let page = await follow(
    me,
    await post(me, '/me/static-tunnel', { hostname: 'cottage', endpoint: '', delegatePrefix: '1' }),
  );
  assert.match(page, /Static tunnel cottage created/);
  assert.match(page, /waiting for an endpoint/);

  const bad = await post(me, '/me/static-tunnel/endpoint', { endpoint: '10.0.0.1' });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /not a public unicast IPv4 address/);
  page = await follow(me, await post(me, '/me/static-tunnel/endpoint', { endpoint: '192.0.2.33' }));
  assert.match(page, /Endpoint set: 192\.0\.2\.33 \(good\)/);
  const live = b.broker.tunnels.list();
  assert.equal(live.length, 1);
  assert.equal(live[0]!.clientIpv4, '192.0.2.33');
  assert.ok(live[0]!.prefix, 'with the delegated prefix asked for');
  assert.ok(page.includes(live[0]!.clientIpv6), 'the page shows the tunnel address');

  const keyed = await post(me, '/me/static-tunnel/update-key', {});
  assert.equal(keyed.status, 200);
  const key = /id="static-key-value">(tspu_[A-Za-z0-9_-]+)</.exec(await keyed.text())?.[1];
  assert.ok(key, 'the new key is in the reply');
  assert.equal((await get(me, '/me')).includes(key), false, 'and nowhere after');
  const auth = `Basic ${Buffer.from(`holder:${key}`).toString('base64')}`;
  const upd = await fetch(`${me.base}/nic/update?hostname=cottage&myip=192.0.2.34`, {
    headers: { authorization: auth },
  });
  assert.equal((await upd.text()).trim(), 'good 192.0.2.34');

  // the operator sees it on the account's page and may set it there too
  const ops = await signIn(`http://127.0.0.1:${b.admin!.port}`, 'root', 'root-password');
  assert.match(await get(ops, '/accounts/holder'), /192\.0\.2\.34/);
  assert.equal((await post(ops, '/accounts/holder/static-tunnel/endpoint', { endpoint: '192.0.2.35' })).status, 303);
  assert.equal(b.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.35');

  assert.match(await follow(me, await post(me, '/me/static-tunnel/delete', {})), /Static tunnel cottage removed/);
  assert.equal(b.broker.tunnels.list().length, 0);
});

test("the account holder's own endpoint changes and new keys count against staticTunnels.changesPerHour", async () => {
  await b.stop();
  b = await startTestBroker({
    admin: { enabled: true, port: 0 },
    selfService: { enabled: true, address: '127.0.0.1', port: 0 },
    staticTunnels: { changesPerHour: 3, endpointFromSource: false },
  });
  await b.addUser('holder', 'holder-password');
  await b.addUser('root', 'root-password', 'admin');
  const me = await signIn(`http://127.0.0.1:${b.selfService!.port}`, 'holder', 'holder-password');
  await follow(me, await post(me, '/me/static-tunnel', { hostname: 'cottage', endpoint: '192.0.2.40' }));
  // three changes: an endpoint, a key, an update with that key (creating it was none)
  await follow(me, await post(me, '/me/static-tunnel/endpoint', { endpoint: '192.0.2.41' }));
  const key = /id="static-key-value">(tspu_[A-Za-z0-9_-]+)</.exec(
    await (await post(me, '/me/static-tunnel/update-key', {})).text(),
  )?.[1];
  assert.ok(key);
  const update = async (ip: string) => {
    const auth = `Basic ${Buffer.from(`holder:${key}`).toString('base64')}`;
    const r = await fetch(`${me.base}/nic/update?hostname=cottage&myip=${ip}`, { headers: { authorization: auth } });
    return (await r.text()).trim();
  };
  assert.equal(await update('192.0.2.42'), 'good 192.0.2.42');
  // the fourth, whichever way: refused, nothing moves
  const over = await post(me, '/me/static-tunnel/endpoint', { endpoint: '192.0.2.43' });
  assert.equal(over.status, 429);
  assert.match(await over.text(), /API_RATE_LIMITED/);
  assert.equal((await post(me, '/me/static-tunnel/update-key', {})).status, 429);
  assert.equal(await update('192.0.2.44'), 'abuse');
  assert.equal(await update('192.0.2.42'), 'nochg 192.0.2.42', 'no change is no change');
  assert.equal(b.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.42');
  // an operator is not counted
  const ops = await signIn(`http://127.0.0.1:${b.admin!.port}`, 'root', 'root-password');
  assert.equal((await post(ops, '/accounts/holder/static-tunnel/endpoint', { endpoint: '192.0.2.45' })).status, 303);
  assert.equal(b.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.45');
});
