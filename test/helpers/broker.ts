/** Starts a real broker in-process for tests: real UDP and TCP sockets on 127.0.0.1 (port 0), a real SQLite
 *  file in a temporary folder, and MemoryDataPlane (control only) unless a test passes another data plane. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseConfig, type ConfigInput } from '../../src/config/schema.js';
import { startBroker, type RunningBroker, type StartOptions } from '../../src/cli/start-broker.js';
import { deriveCredentials } from '../../src/broker/credentials.js';
import type { Role } from '../../src/store/types.js';

export interface TestBroker extends RunningBroker {
  dir: string;
  addUser(username: string, password: string, role?: Role): Promise<number>;
  stop(): Promise<void>;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object'
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export async function startTestBroker(
  overrides: ConfigInput = {},
  opts: Partial<StartOptions> & { dir?: string } = {},
): Promise<TestBroker> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'tsp-broker-test-'));
  const base: ConfigInput = {
    listen: { address: '127.0.0.1', port: 0 },
    auth: { realm: 'tsp-fake', plain: true },
    pools: { link: '2001:db8:f00::/48', delegation: '2001:db8:f000::/40' },
    store: { path: path.join(dir, 'broker.db') },
    dataplane: { driver: 'memory' },
    admin: { enabled: false },
    log: { level: 'silent' },
  };
  const config = parseConfig(merge(base as Record<string, unknown>, overrides as Record<string, unknown>));
  const log = pino({ level: process.env.TEST_LOG ? 'debug' : config.log.level });
  const running = await startBroker(config, { log, ...opts });
  return {
    ...running,
    dir,
    async addUser(username, password, role = 'user') {
      const creds = await deriveCredentials(username, password, config.auth.realm);
      const a = await running.store.createAccount({ username, role, ...creds });
      return a.id;
    },
    async stop() {
      await running.close();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
