/** The admin server under TLS (admin.tls): HTTPS with the configured certificate, cookies marked Secure, and
 *  Strict-Transport-Security on every response.
 *  The certificate is made here with openssl for 127.0.0.1 and trusted as the only CA of the requests. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-tls-'));
let broker: TestBroker | undefined;
after(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  port: number,
  ca: Buffer,
  p: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method: p.method ?? 'GET', path: p.path, headers: p.headers, ca, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.end(p.body);
  });
}

test('HTTPS with the configured certificate; session and CSRF cookies are Secure; HSTS on every response', async () => {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  broker = await startTestBroker({ admin: { enabled: true, port: 0, tls: { cert, key } } });
  await broker.addUser('root', 'correct horse', 'admin');
  const port = broker.admin!.port;
  const ca = readFileSync(cert);

  const form = await request(port, ca, { path: '/login' });
  assert.equal(form.status, 200);
  const loginCookie = [form.headers['set-cookie'] ?? []].flat().find((c) => c.startsWith('tspb_login_csrf='));
  assert.ok(loginCookie, 'login CSRF cookie set');
  assert.match(loginCookie, /;\s*Secure/i);
  const field = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  assert.ok(field);

  const signIn = await request(port, ca, {
    method: 'POST',
    path: '/login',
    headers: { cookie: loginCookie.split(';')[0]!, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: field, username: 'root', password: 'correct horse', next: '' }).toString(),
  });
  assert.equal(signIn.status, 303);
  const session = [signIn.headers['set-cookie'] ?? []].flat().find((c) => c.startsWith('tspb_session='));
  assert.ok(session, 'session cookie set');
  assert.match(session, /;\s*Secure/i);
  assert.match(session, /;\s*HttpOnly/i);

  // HSTS on every response under TLS: pages, redirects, JSON errors, metrics, assets
  const hsts = 'max-age=31536000';
  assert.equal(form.headers['strict-transport-security'], hsts);
  assert.equal(signIn.headers['strict-transport-security'], hsts);
  for (const p of ['/api/v1/accounts', '/api/v1/nope', '/metrics', '/assets/app.css', '/healthz', '/'])
    assert.equal((await request(port, ca, { path: p })).headers['strict-transport-security'], hsts, p);

  // plain HTTP on the TLS port gets no page
  const plain = await new Promise<number | string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/login', timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e) => resolve(e.message));
    req.on('timeout', () => req.destroy(new Error('timed out')));
  });
  assert.notEqual(plain, 200);
});
