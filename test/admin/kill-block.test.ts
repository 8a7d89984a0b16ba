/** Kill and block (POST /api/v1/tunnels/{id}/kill with { blockMinutes }) against a real broker over real TSP
 *  sessions on loopback: after it, a new session of that account gets 301 at tunnel creation until the block
 *  expires (the broker's clock is moved past it), while a plain kill lets the client straight back. An
 *  anonymous tunnel's block holds its source address. The kill is audited with the block. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock, type Clock } from '../../src/clock.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { runSession, type SessionPlan } from '../helpers/tsp.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { TokenService } from '../../src/admin/tokens.js';
import type { FastifyInstance } from 'fastify';

let skewMs = 0;
/** Real time, moved forward by hand past a block's end. */
const clock: Clock = { ...systemClock, now: () => Date.now() + skewMs };

let b: TestBroker | undefined;
let app: FastifyInstance | undefined;
after(async () => {
  await app?.close();
  await b?.stop();
});

/** A whole TSP session (create and accept); returns the create status and closes the socket. */
async function session(auth: SessionPlan['auth']): Promise<number> {
  const r = await runSession({ transport: 'udp', port: b!.ports.udp, auth });
  r.udp?.close();
  return r.createStatus;
}

function liveIdOf(username: string | null): number {
  const t = b!.broker.liveTunnels().find((x) => x.username === username);
  assert.ok(t, `a live tunnel of ${username ?? 'anonymous'}`);
  return t.id;
}

test('kill and block refuses the account a tunnel until the block expires; a plain kill does not', async () => {
  b = await startTestBroker({}, { clock });
  await b.addUser('alice', 'alice-password');
  app = await buildAdminApp({ ...b, clock });
  const { token } = await new TokenService(b.store, clock).create('test', 'ops');
  const kill = (id: number, body?: object) =>
    app!.inject({
      method: 'POST',
      url: `/api/v1/tunnels/${id}/kill`,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { payload: JSON.stringify(body) } : {}),
    });
  const alice = { mechanism: 'DIGEST-MD5', username: 'alice', password: 'alice-password' } as const;

  assert.equal(await session(alice), 200);
  const bad = await kill(liveIdOf('alice'), { blockMinutes: 0 });
  assert.equal(bad.statusCode, 400, 'blockMinutes is 1 to 1440');
  assert.equal((await kill(liveIdOf('alice'), { blockMinutes: 2, other: 1 })).statusCode, 400);

  // kill and block for 2 minutes
  const id = liveIdOf('alice');
  assert.equal((await kill(id, { blockMinutes: 2 })).statusCode, 204);
  assert.equal(b.broker.liveTunnels().length, 0);
  assert.equal(await session(alice), 301, 'refused while blocked');
  skewMs += 60_000;
  assert.equal(await session(alice), 301, 'still refused a minute later');
  skewMs += 61_000;
  assert.equal(await session(alice), 200, 'back once the block expired');

  // a plain kill (no body, as before) lets the client straight back
  assert.equal((await kill(liveIdOf('alice'))).statusCode, 204);
  assert.equal(await session(alice), 200, 'a plain kill does not block');

  // anonymous: the block holds the source address
  assert.equal(await session({ mechanism: 'ANONYMOUS' }), 200);
  assert.equal((await kill(liveIdOf(null), { blockMinutes: 1 })).statusCode, 204);
  assert.equal(await session({ mechanism: 'ANONYMOUS' }), 301, 'the source address is blocked');
  assert.equal(await session(alice), 200, 'an account from the same address is not');
  skewMs += 61_000;
  assert.equal(await session({ mechanism: 'ANONYMOUS' }), 200);

  // audited with the block
  const audit = await b.store.listAudit({ action: 'tunnel.kill', offset: 0, limit: 10 });
  const blocked = audit.items.find((e) => e.target === String(id));
  assert.equal((blocked?.detail as { blockMinutes?: number } | null)?.blockMinutes, 2);
});
