#!/usr/bin/env node
/** @module cli/tspc: the `tspc` command, a TSP client (docs/tspc.md).
 *    tspc [run] [-f gogoc.conf] [flags]   negotiate, set the tunnel up, keep it up (foreground; SIGINT/SIGTERM
 *                                         tear down and exit 0)
 *    tspc status [--json]                 the running tspc's state, tunnel, addresses, counters, keepalive RTT
 *    tspc check [-f gogoc.conf] [flags]   validate the configuration and print what tspc would use
 *  Flags are the config file's keys under another spelling and go through the same validation (docs/style.md §9).
 *  Errors are printed as `tspc: <message>` with the exit statuses of client/exit-codes.ts (docs/style.md §8). */

import { Command, Option } from 'commander';
import { BrokerError, isBrokerError } from '../errors.js';
import { readTspcConfigFile, resolveConfig, type RawConfig, type TspcConfig } from '../client/config.js';
import { EXIT, adviceFor, exitCodeFor } from '../client/exit-codes.js';
import { createLog } from '../client/log.js';
import { formatStatus, isAlive, readStatus } from '../client/status.js';
import { Tspc, homeDirFor } from '../client/tspc.js';
import { readPassword } from './password.js';

const DEFAULT_STATUS_FILE = '/run/tspc/status.json';

const program = new Command();
program
  .name('tspc')
  .description('TSP (RFC 5572) tunnel client: IPv6 over IPv4 through a tunnel broker; reads gogoc.conf keys')
  .showHelpAfterError();

/** Flags -> gogoc.conf keys. Only flags actually given are returned (they override the file). */
function flagsToKeys(o: Record<string, unknown>): RawConfig {
  const map: [string, string][] = [
    ['server', 'server'],
    ['user', 'userid'],
    ['auth', 'auth_method'],
    ['mode', 'tunnel_mode'],
    ['transport', 'transport'],
    ['prefixlen', 'prefixlen'],
    ['lan', 'if_prefix'],
    ['ra', 'ra'],
    ['keepaliveInterval', 'keepalive_interval'],
    ['keepaliveMisses', 'keepalive_misses'],
    ['keepaliveTimeout', 'keepalive_timeout'],
    ['hook', 'hook'],
    ['statusFile', 'status_file'],
    ['retryDelay', 'retry_delay'],
    ['retryDelayMax', 'retry_delay_max'],
    ['clientV4', 'client_v4'],
    ['clientV6', 'client_v6'],
    ['logLevel', 'log_level'],
  ];
  const raw: RawConfig = {};
  for (const [flag, key] of map) if (o[flag] !== undefined) raw[key] = String(o[flag]);
  if (o.router) raw.host_type = 'router';
  if (o.tun !== undefined) raw.if_tunnel_v6udpv4 = raw.if_tunnel_v6v4 = raw.if_tunnel_v4v6 = String(o.tun);
  if (o.keepalive === false) raw.keepalive = 'no';
  if (o.defaultRoute === false) raw.default_route = 'no';
  if (o.retry === false) raw.auto_retry_connect = 'no';
  return raw;
}

function withConfigFlags(cmd: Command): Command {
  return cmd
    .option('-f, --config <file>', 'gogoc.conf-style file (key=value); flags override it')
    .option('-s, --server <host[:port]>', 'the broker (server): host, IPv4 or [IPv6] (v4v6), optionally :port')
    .option('-u, --user <userid>', 'account name (userid)')
    .option('--password-stdin', 'read passwd from the first line of standard input')
    .addOption(new Option('-a, --auth <method>', 'auth_method').choices(['any', 'anonymous', 'plain', 'digest-md5']))
    .addOption(new Option('-m, --mode <mode>', 'tunnel_mode').choices(['v6anyv4', 'v6v4', 'v6udpv4', 'v4v6']))
    .addOption(new Option('-t, --transport <transport>', 'TSP over udp (default) or tcp').choices(['udp', 'tcp']))
    .option('--router', 'router mode: ask for a prefix (host_type=router)')
    .option('--prefixlen <n>', 'prefix length asked for in router mode (prefixlen)')
    .option('--lan <ifname>', 'router mode: interface that gets the delegated prefix (if_prefix)')
    .addOption(
      new Option(
        '--ra <mode>',
        'router advertisements on the LAN: radvd if installed, else builtin (ra, auto)',
      ).choices(['auto', 'radvd', 'builtin', 'off']),
    )
    .option('--tun <name>', 'tunnel interface name (if_tunnel_v6udpv4, if_tunnel_v6v4 and if_tunnel_v4v6)')
    .option('--keepalive-interval <s>', 'keepalive interval wished for; the offer decides (keepalive_interval)')
    .option('--no-keepalive', 'do not ask for keepalives (keepalive=no)')
    .option('--keepalive-misses <n>', 'unanswered echoes in a row before reconnecting (keepalive_misses, 3)')
    .option('--keepalive-timeout <s>', 'wait for each echo reply (keepalive_timeout, 5)')
    .option('--no-default-route', 'do not route ::/0 over the tunnel (default_route=no)')
    .option('--hook <script>', 'run after up and down with the TSP_* variables (hook)')
    .option('--status-file <path>', `status file (status_file, ${DEFAULT_STATUS_FILE})`)
    .option('--no-retry', 'exit instead of reconnecting (auto_retry_connect=no)')
    .option('--retry-delay <s>', 'first reconnect delay (retry_delay, 30)')
    .option('--retry-delay-max <s>', 'longest reconnect delay (retry_delay_max, 300)')
    .option('--client-v4 <ipv4>', 'local IPv4 to use (client_v4, auto)')
    .option('--client-v6 <ipv6>', 'local IPv6 to use for v4v6 (client_v6, auto)')
    .addOption(new Option('--log-level <level>', 'log_level').choices(['error', 'warn', 'info', 'debug']));
}

async function loadConfig(o: Record<string, unknown>): Promise<{ config: TspcConfig; warnings: string[] }> {
  const layers: RawConfig[] = [];
  if (o.config) {
    const file = readTspcConfigFile(String(o.config));
    if (file.problems.length) throw new BrokerError('CFG_INVALID', file.problems.join('\n'));
    layers.push(file.raw);
  }
  const flags = flagsToKeys(o);
  if (o.passwordStdin) flags.passwd = await readPassword(true, '', false);
  else if (process.env.TSPC_PASSWORD !== undefined && flags.passwd === undefined)
    flags.passwd = process.env.TSPC_PASSWORD;
  layers.push(flags);
  try {
    return resolveConfig(...layers);
  } catch (e) {
    if (isBrokerError(e) && o.config) throw new BrokerError(e.code, `${String(o.config)}:\n${e.message}`, { cause: e });
    throw e;
  }
}

withConfigFlags(program.command('run', { isDefault: true }))
  .description('connect, set the tunnel up and keep it up (the default command)')
  .action(async (o: Record<string, unknown>) => {
    const { config, warnings } = await loadConfig(o);
    const log = createLog(config.logLevel);
    for (const w of warnings) log.warn(w);
    const tspc = new Tspc(config, log, homeDirFor(o.config as string | undefined));
    const stop = (signal: string) => {
      log.info(`${signal}: tearing the tunnel down`);
      tspc.stop();
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => stop('SIGHUP'));
    const code = await tspc.run();
    if (code !== EXIT.OK) report(tspc.failure, code);
    process.exit(code);
  });

program
  .command('status')
  .description("the running tspc's state, tunnel, addresses, counters and last keepalive RTT")
  .option('--status-file <path>', 'status file', DEFAULT_STATUS_FILE)
  .option('--json', 'print the status file as JSON')
  .action((o: { statusFile: string; json?: boolean }) => {
    const s = readStatus(o.statusFile);
    const alive = isAlive(s.pid);
    if (o.json) console.log(JSON.stringify({ ...s, running: alive }, null, 2));
    else console.log(formatStatus(s, alive));
    process.exitCode = alive && s.state === 'up' ? 0 : 1;
  });

withConfigFlags(program.command('check'))
  .description('validate the configuration and print the settings tspc would use')
  .action(async (o: Record<string, unknown>) => {
    const { config, warnings } = await loadConfig(o);
    for (const w of warnings) console.error(`tspc: warning: ${w}`);
    console.log(JSON.stringify({ ...config, passwd: config.passwd ? '(set)' : '' }, null, 2));
  });

function report(e: unknown, code: number): void {
  const message = isBrokerError(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
  console.error(`tspc: ${message}`);
  const advice = adviceFor(e);
  if (advice) console.error(`tspc: ${advice}`);
  void code;
}

try {
  await program.parseAsync();
} catch (e) {
  const code = exitCodeFor(e);
  report(e, code);
  process.exit(code);
}
