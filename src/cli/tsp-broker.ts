#!/usr/bin/env node
/** @module cli/tsp-broker: the `tsp-broker` command: serve, user management, tunnel listing, config defaults.
 *  Errors are printed as `tsp-broker: <message>` with exit status 2 for configuration and usage errors, 1 for
 *  everything else (docs/style.md §8: errors become output only here). */

import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createLogger, flushLogs } from './logger.js';
import { logStartup } from './startup.js';
import { findConfigFile, loadConfig, type Overrides } from '../config/load.js';
import { defaultConfig, type Config } from '../config/schema.js';
import { BrokerError, isBrokerError } from '../errors.js';
import { openCliStore } from './database.js';
import { AccountService } from '../broker/accounts.js';
import { killTunnelInStore } from '../broker/tunnel-admin.js';
import { endpointLabel, innerAddress } from '../tunnel-model.js';
import { startBroker } from './start-broker.js';
import { TokenService } from '../admin/tokens.js';
import { readPassword } from './password.js';
import { registerNodeCommands } from './node-commands.js';

const program = new Command();
/** package.json's version: two levels up from src/cli/ and from dist/cli/ alike. */
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
program
  .name('tsp-broker')
  .description('IPv6 tunnel broker speaking TSP (RFC 5572)')
  .version(version)
  .showHelpAfterError();

/** Flags shared by every command that needs the configuration; they override the file. */
function withConfigFlags(cmd: Command): Command {
  return cmd
    .option(
      '-c, --config <file>',
      'JSON configuration file (defaults apply to what it leaves out); without it, $TSP_BROKER_CONFIG or ' +
        '/etc/tsp-broker/config.json when that exists',
    )
    .option('--db <path>', 'SQLite database file (store.path)')
    .option('--db-url <url>', 'PostgreSQL connection string: store.driver postgres with this store.url')
    .option('--realm <realm>', 'DIGEST-MD5 realm (auth.realm)')
    .option(
      '--allow-group-readable',
      'open the SQLite file even if group or others may read it (store.allowGroupReadable)',
    );
}

function num(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new BrokerError('CFG_INVALID', `not a whole number: ${v}`);
  return n;
}

function configFrom(o: Record<string, unknown>): Config {
  const overrides: Overrides = {
    'store.path': o.db,
    ...(o.dbUrl !== undefined ? { 'store.driver': 'postgres', 'store.url': o.dbUrl } : {}),
    'cluster.nodeId': o.nodeId,
    'auth.realm': o.realm,
    'store.allowGroupReadable': o.allowGroupReadable,
    'listen.address': o.listen,
    'listen.port': o.port,
    'auth.mode': o.authMode,
    'auth.plain': o.plain,
    'pools.link': o.linkPool,
    'pools.delegation': o.delegationPool,
    'dataplane.tun': o.tun,
    'dataplane.driver': o.dataplane,
    serverIpv4: o.serverIpv4,
    'admin.port': o.adminPort,
    'admin.enabled': o.admin,
    'log.level': o.logLevel,
    'log.format': o.logFormat,
  };
  // --config, else TSP_BROKER_CONFIG or /etc/tsp-broker/config.json when it exists (config/load.ts)
  return loadConfig(findConfigFile(o.config as string | undefined).file, overrides);
}

/** Opens the database of the configuration; only `serve` and `user add` (`create`) may create a new one. */
function openFor(o: Record<string, unknown>, config: Config, create = false) {
  return openCliStore(config, findConfigFile(o.config as string | undefined), o.db, { mustExist: !create });
}

withConfigFlags(program.command('serve'))
  .description('run the broker (UDP and TCP on port 3653 by default)')
  .option('--listen <ipv4>', 'listen address for TSP (listen.address)')
  .option('--port <n>', 'TSP port, UDP and TCP (listen.port)', num)
  .addOption(new Option('--auth-mode <mode>', 'auth.mode').choices(['anonymous', 'authenticated', 'hybrid']))
  .option('--plain', 'also offer PLAIN authentication (auth.plain; sends passwords in clear)')
  .option('--link-pool <cidr>', 'link address pool (pools.link)')
  .option('--delegation-pool <cidr>', 'delegated prefix pool (pools.delegation)')
  .option('--tun <name>', 'TUN device name (dataplane.tun)')
  .addOption(new Option('--dataplane <driver>', 'dataplane.driver').choices(['ebpf', 'native', 'memory', 'auto']))
  .option('--server-ipv4 <ipv4>', 'IPv4 address written into offers (serverIpv4)')
  .option('--node-id <name>', "this node's name in a cluster (cluster.nodeId; default the host name)")
  .option('--admin-port <n>', 'admin HTTP port (admin.port)', num)
  .option('--no-admin', 'do not start the admin HTTP server')
  .addOption(
    new Option('--log-level <level>', 'log.level').choices([
      'fatal',
      'error',
      'warn',
      'info',
      'debug',
      'trace',
      'silent',
    ]),
  )
  .addOption(
    new Option('--log-format <format>', 'log.format: human, json, or auto (human on a terminal)').choices([
      'auto',
      'human',
      'json',
    ]),
  )
  .action(async (o: Record<string, unknown>) => {
    if (o.admin === true) delete o.admin; // commander sets it true by default; only --no-admin overrides
    const config = configFrom(o);
    const log = createLogger(config.log);
    const running = await startBroker(config, { log });
    await logStartup(running, findConfigFile(o.config as string | undefined), o, log);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      void running.close().then(() => process.exit(0));
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });

async function withAccounts<T>(
  o: Record<string, unknown>,
  f: (a: AccountService, c: Config) => Promise<T>,
  create = false,
): Promise<T> {
  const config = configFrom(o);
  const { store, created } = await openFor(o, config, create);
  if (created) console.log(`created a new database at ${created}`);
  try {
    return await f(new AccountService(store, config.auth.realm), config);
  } finally {
    await store.close();
  }
}

const user = program.command('user').description('manage accounts');

withConfigFlags(user.command('add <username>'))
  .description('create an account (the password is prompted for)')
  .option('--admin', 'give the account the admin role (web UI and API)')
  .option('--web-only', 'web UI and API only: store no DIGEST-MD5 secret, so no TSP login with DIGEST-MD5')
  .option('--password-stdin', 'read the password from the first line of standard input')
  .action(async (username: string, o: Record<string, unknown>) => {
    const password = await readPassword(!!o.passwordStdin, `Password for ${username}: `, true);
    await withAccounts(
      o,
      async (a) => {
        const acc = await a.create('cli', {
          username,
          password,
          role: o.admin ? 'admin' : 'user',
          webOnly: !!o.webOnly,
        });
        console.log(`created ${acc.webOnly ? 'web-only ' : ''}${acc.role} account ${acc.username} (id ${acc.id})`);
      },
      true,
    );
  });

withConfigFlags(user.command('list'))
  .description('list accounts')
  .option('--search <text>', 'only usernames containing this')
  .option('--json', 'machine-readable output')
  .action(async (o: Record<string, unknown>) => {
    await withAccounts(o, async (a) => {
      const items = [];
      for (let offset = 0; ; offset += 500) {
        const page = await a.list({ search: o.search as string | undefined, offset, limit: 500 });
        items.push(...page.items);
        if (items.length >= page.total || page.items.length === 0) break;
      }
      if (o.json) return console.log(JSON.stringify(items, null, 2));
      console.log(['ID', 'USERNAME', 'ROLE', 'STATE', 'CREATED', 'LOGIN'].join('\t'));
      for (const x of items)
        console.log(
          [
            x.id,
            x.username,
            x.role,
            x.disabled ? 'disabled' : 'active',
            new Date(x.createdAt).toISOString(),
            x.webOnly ? 'web-only' : 'tsp+web',
          ].join('\t'),
        );
    });
  });

withConfigFlags(user.command('passwd <username>'))
  .description("set an account's password (argon2id hash and DIGEST-MD5 secret together; a web-only account stays so)")
  .option('--password-stdin', 'read the password from the first line of standard input')
  .option('--web-only', 'make the account web-only: its DIGEST-MD5 secret is dropped')
  .option('--tsp', 'give a web-only account a DIGEST-MD5 secret again, for TSP')
  .action(async (username: string, o: Record<string, unknown>) => {
    if (o.webOnly && o.tsp) throw new BrokerError('API_BAD_REQUEST', '--web-only and --tsp exclude each other');
    const password = await readPassword(!!o.passwordStdin, `New password for ${username}: `, true);
    const webOnly = o.webOnly ? true : o.tsp ? false : undefined;
    await withAccounts(o, (a) => a.setPassword('cli', username, password, webOnly === undefined ? {} : { webOnly }));
    console.log(`password of ${username} changed`);
  });

for (const [name, disabled] of [
  ['disable', true],
  ['enable', false],
] as const) {
  withConfigFlags(user.command(`${name} <username>`))
    .description(disabled ? 'refuse authentication for an account' : 'allow authentication again')
    .action(async (username: string, o: Record<string, unknown>) => {
      await withAccounts(o, (a) => a.setDisabled('cli', username, disabled));
      console.log(`${username} ${disabled ? 'disabled' : 'enabled'}`);
    });
}

withConfigFlags(user.command('delete <username>'))
  .description('delete an account and release its addresses')
  .action(async (username: string, o: Record<string, unknown>) => {
    await withAccounts(o, (a) => a.delete('cli', username));
    console.log(`${username} deleted`);
  });

const tunnel = program.command('tunnel').description('inspect tunnels');
withConfigFlags(tunnel.command('list'))
  .description('list live tunnels (or all recent ones with --all)')
  .option('--all', 'include ended tunnels')
  .option('--limit <n>', 'at most this many rows', num, 100)
  .option('--json', 'machine-readable output')
  .action(async (o: Record<string, unknown>) => {
    const config = configFrom(o);
    const { store } = await openFor(o, config);
    try {
      const page = await store.listTunnels({ ...(o.all ? {} : { state: 'live' as const }), limit: o.limit as number });
      if (o.json) return console.log(JSON.stringify(page.items, null, 2));
      console.log(
        ['ID', 'ACCOUNT', 'TYPE', 'ENDPOINT', 'CLIENT ADDRESS', 'PREFIX', 'STATE', 'NODE', 'SINCE', 'END'].join('\t'),
      );
      for (const t of page.items)
        console.log(
          [
            t.id,
            t.username ?? '(anonymous)',
            t.type,
            endpointLabel(t),
            innerAddress(t),
            t.prefix ? `${t.prefix}/${t.prefixLen}` : '-',
            t.state,
            t.node ?? '-',
            new Date(t.establishedAt ?? t.createdAt).toISOString(),
            t.endReason ?? '-',
          ].join('\t'),
        );
      if (page.total > page.items.length) console.log(`(${page.items.length} of ${page.total} shown)`);
    } finally {
      await store.close();
    }
  });

const token = program.command('token').description('admin API tokens (the same TokenService as the REST API)');

async function withTokens<T>(o: Record<string, unknown>, f: (t: TokenService) => Promise<T>): Promise<T> {
  const { store } = await openFor(o, configFrom(o));
  try {
    return await f(new TokenService(store));
  } finally {
    await store.close();
  }
}

withConfigFlags(token.command('create <name>'))
  .description('create an API token and print it (shown once; only its hash is stored)')
  .option('--expires-days <n>', 'refuse the token after this many days (default: never expires)')
  .action(async (name: string, o: Record<string, unknown>) => {
    const days = o.expiresDays === undefined ? undefined : String(o.expiresDays);
    if (days !== undefined && !/^\d+$/.test(days))
      throw new BrokerError('API_BAD_REQUEST', `--expires-days takes a whole number of days, not ${days}`);
    const { token: value } = await withTokens(o, (t) =>
      t.create('cli', name, { expiresInDays: days === undefined ? undefined : Number(days) }),
    );
    console.log(value);
  });

withConfigFlags(token.command('list'))
  .description('list API tokens (never their values)')
  .option('--json', 'machine-readable output')
  .action(async (o: Record<string, unknown>) => {
    const items = await withTokens(o, (t) => t.list());
    if (o.json) return console.log(JSON.stringify(items, null, 2));
    console.log(['NAME', 'CREATED BY', 'CREATED', 'LAST USED', 'EXPIRES'].join('\t'));
    const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
    const expires = (ms: number | null) =>
      ms === null ? 'never' : `${new Date(ms).toISOString()}${ms <= Date.now() ? ' (expired)' : ''}`;
    for (const x of items)
      console.log([x.name, x.createdBy, when(x.createdAt), when(x.lastUsedAt), expires(x.expiresAt)].join('\t'));
  });

withConfigFlags(token.command('revoke <name>'))
  .description('revoke an API token')
  .action(async (name: string, o: Record<string, unknown>) => {
    await withTokens(o, (t) => t.revoke('cli', name));
    console.log(`token ${name} revoked`);
  });

withConfigFlags(tunnel.command('kill <id>'))
  .description('end a tunnel: committed at once, and a running broker drops it within seconds')
  .action(async (id: string, o: Record<string, unknown>) => {
    const n = Number(id);
    if (!Number.isInteger(n) || n <= 0) throw new BrokerError('API_BAD_REQUEST', `not a tunnel id: ${id}`);
    const config = configFrom(o);
    const { store } = await openFor(o, config);
    try {
      await killTunnelInStore(store, n, 'cli', Date.now());
      console.log(`tunnel ${n} ended`);
    } finally {
      await store.close();
    }
  });

registerNodeCommands(program, { withConfigFlags, configFrom, openFor });

const config = program.command('config').description('configuration');
config
  .command('defaults')
  .description('print the default configuration as JSON')
  .action(() => console.log(JSON.stringify(defaultConfig(), null, 2)));
withConfigFlags(config.command('check'))
  .description('validate a configuration file and print the result with defaults filled in')
  .action((o: Record<string, unknown>) => console.log(JSON.stringify(configFrom(o), null, 2)));

program.parseAsync(process.argv).catch((err: unknown) => {
  flushLogs(); // the log lines of this turn read before the error
  if (isBrokerError(err)) {
    console.error(`tsp-broker: ${err.message}`);
    process.exit(err.code.startsWith('CFG_') || err.code === 'API_BAD_REQUEST' ? 2 : 1);
  }
  console.error(`tsp-broker: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
