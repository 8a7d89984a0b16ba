/** @module client/config: tspc's one configuration model (docs/style.md §9). A gogoc.conf-style file
 *  (`key=value` lines, `#` comments) and command-line flags are both turned into `key -> text` pairs with
 *  gogoc's key names, laid over the defaults and validated here, once, naming the key and the problem.
 *
 *  Keys fall in three groups (docs/tspc.md lists them):
 *   - gogoc keys that mean the same to tspc (GOGOC_KEYS): a gogoc user can point tspc at gogoc.conf;
 *   - gogoc keys accepted and ignored (IGNORED_GOGOC_KEYS): logging, redirection files, templates, v4v6...
 *     A value that would change behaviour under gogoc yields a warning;
 *   - tspc's own keys (TSPC_KEYS): transport, default route, keepalive misses, hook, status file, router
 *     advertisements on the LAN (ra).
 *  Anything else is an error naming the key. Pure apart from readTspcConfigFile. */

import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { BrokerError } from '../errors.js';
import { checkNameServers } from '../dns/reverse.js';
import { TSP_PORT } from '../protocol/constants.js';
import type { AuthMethod, RequestedMode } from '../protocol/client/session.js';

export interface TspcConfig {
  /** The broker: host name, IPv4 or IPv6 (`[2001:db8::1]:3653` in the file), port, and the `server=` text as
   *  written (DIGEST's digest-uri uses it). */
  server: { host: string; port: number; text: string };
  /** Every server of `server=` (a comma-separated list in tspc; gogoc takes one): `server` first, then the
   *  ones tried in turn when it fails (the nodes of a cluster, docs/tspc.md). */
  servers: { host: string; port: number; text: string }[];
  userid: string;
  passwd: string;
  authMethod: AuthMethod;
  hostType: 'host' | 'router';
  /** Prefix length asked for in router mode. */
  prefixLen: number;
  /** Router mode: the LAN interface that gets the delegated prefix (gogoc's if_prefix). */
  lanInterface: string;
  /** Router mode: name servers the prefix's reverse zone is to be delegated to (gogoc's dns_server, names
   *  separated by colons); empty: no delegation asked for. */
  dnsServers: string[];
  /** Router mode: who sends router advertisements on the LAN (client/ra.ts). */
  ra: RaMode;
  tunnelMode: RequestedMode;
  transport: 'udp' | 'tcp';
  /** Ask for keepalives (the offer decides the interval; §6.6). */
  keepalive: boolean;
  keepaliveIntervalS: number;
  /** Echo requests without a reply in a row before the server is declared dead. */
  keepaliveMisses: number;
  /** Wait for each echo reply this long. */
  keepaliveTimeoutS: number;
  tunV6udpv4: string;
  tunV6v4: string;
  tunV4v6: string;
  /** Local IPv4 to use ('auto': the kernel's choice toward the server). */
  clientV4: string;
  /** Local IPv6 to use for v4v6 ('auto': the kernel's choice toward the server). */
  clientV6: string;
  defaultRoute: boolean;
  autoRetryConnect: boolean;
  retryDelayS: number;
  retryDelayMaxS: number;
  /** Script run after the tunnel comes up and after it goes down, with gogoc's TSP_* variables. */
  hook: string;
  statusFile: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
}

/** gogoc.conf keys whose meaning tspc keeps. */
export const GOGOC_KEYS = [
  'server',
  'userid',
  'passwd',
  'auth_method',
  'host_type',
  'prefixlen',
  'if_prefix',
  'dns_server',
  'tunnel_mode',
  'keepalive',
  'keepalive_interval',
  'if_tunnel_v6udpv4',
  'if_tunnel_v6v4',
  'if_tunnel_v4v6',
  'client_v4',
  'client_v6',
  'auto_retry_connect',
  'retry_delay',
  'retry_delay_max',
] as const;

/** gogoc.conf keys tspc accepts and ignores (no meaning here, or a feature tspc does not have). */
export const IGNORED_GOGOC_KEYS = [
  'gogoc_dir',
  'template',
  'proxy_client',
  'broker_list',
  'last_server',
  'always_use_same_server',
  'log_console',
  'log_stderr',
  'log_file',
  'log_syslog',
  'log_filename',
  'log_rotation',
  'log_rotation_size',
  'log_rotation_delete',
  'syslog_facility',
  'haccess_proxy_enabled',
  'haccess_web_enabled',
  'haccess_document_root',
] as const;

/** tspc's own keys (not in gogoc.conf). */
export const TSPC_KEYS = [
  'transport',
  'default_route',
  'keepalive_misses',
  'keepalive_timeout',
  'hook',
  'status_file',
  'log_level',
  'ra',
] as const;

/** `ra`: radvd when installed, else tspc's own (auto); radvd only; tspc's own only; none (client/ra.ts). */
export const RA_MODES = ['auto', 'radvd', 'builtin', 'off'] as const;
export type RaMode = (typeof RA_MODES)[number];

export type ConfigKey = (typeof GOGOC_KEYS)[number] | (typeof TSPC_KEYS)[number];
export type RawConfig = Record<string, string>;

/** Defaults: gogoc.conf.in's where the key is gogoc's (auth_method is `any` rather than its `anonymous`
 *  placeholder only when a userid is set), ours otherwise. Interface names are the ones in the recordings. */
export const DEFAULTS: Record<ConfigKey, string> = {
  server: '',
  userid: '',
  passwd: '',
  auth_method: '',
  host_type: 'host',
  prefixlen: '64',
  if_prefix: '',
  dns_server: '',
  tunnel_mode: 'v6anyv4',
  keepalive: 'yes',
  keepalive_interval: '30',
  if_tunnel_v6udpv4: 'tsptun0',
  if_tunnel_v6v4: 'tspsit0',
  if_tunnel_v4v6: 'tsp4in6',
  client_v4: 'auto',
  client_v6: 'auto',
  auto_retry_connect: 'yes',
  retry_delay: '30',
  retry_delay_max: '300',
  transport: 'udp',
  default_route: '',
  keepalive_misses: '3',
  keepalive_timeout: '5',
  hook: '',
  status_file: '/run/tspc/status.json',
  log_level: 'info',
  ra: 'auto',
};

/** gogoc's dns_server: host names separated by colons (commas and spaces also accepted), checked as the broker
 *  checks them, so a typo is reported here rather than as a 509 from the broker. */
function nameServers(value: string, problems: string[]): string[] {
  const names = value.split(/[:,\s]+/).filter((n) => n !== '');
  try {
    return checkNameServers(names, 13);
  } catch (err) {
    problems.push(`dns_server: ${(err as Error).message}`);
    return [];
  }
}

/** Parses gogoc.conf syntax. Returns the pairs and problems (`file:line: …`). A repeated key keeps the last
 *  value, as gogoc does. */
export function parseConfText(text: string, where: string): { raw: RawConfig; problems: string[] } {
  const raw: RawConfig = {};
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const eq = t.indexOf('=');
    if (eq <= 0) {
      problems.push(`${where}:${i + 1}: expected key=value, got "${t.slice(0, 40)}"`);
      return;
    }
    raw[t.slice(0, eq).trim().toLowerCase()] = t.slice(eq + 1).trim();
  });
  return { raw, problems };
}

export function readTspcConfigFile(file: string): { raw: RawConfig; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BrokerError('CFG_FILE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseConfText(text, file);
}

/** Ignored keys whose value would change what gogoc does: a warning says what tspc does instead. */
const IGNORED_BUT_NOTED: Record<string, string> = {
  template: 'tspc configures the interface itself; put a script in hook= to run after up and down',
  always_use_same_server: 'tspc does not keep a last-server file',
};

const yesNo = (v: string): boolean | undefined => {
  const t = v.toLowerCase();
  return t === 'yes' || t === 'true' || t === '1' ? true : t === 'no' || t === 'false' || t === '0' ? false : undefined;
};
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
/** Servers `server=` may list. */
const MAX_SERVERS = 16;

/** The server string: `host`, `A.B.C.D` or `[IPv6]`, each optionally with `:port` (an IPv6 server is for
 *  tunnel_mode=v4v6, whose TSP runs over IPv6). */
export function parseServer(text: string): { host: string; port: number; text: string } | string {
  if (text === '') return 'is required (the broker: host, IPv4 or [IPv6], optionally :port)';
  const m = /^(?:([A-Za-z0-9.-]+)|\[([0-9A-Fa-f:.]+)\])(?::(\d{1,5}))?$/.exec(text);
  if (!m || (m[2] !== undefined && !ipaddr.IPv6.isValid(m[2])))
    return `"${text}" is not host[:port], A.B.C.D[:port] or [IPv6][:port]`;
  const port = m[3] === undefined ? TSP_PORT : Number(m[3]);
  if (port < 1 || port > 65535) return `port ${port} is out of range`;
  return { host: m[1] ?? m[2]!, port, text };
}

/** tunnel_mode=v4v6 runs TSP over IPv6, the others over IPv4: the server literal must be of that family, and
 *  v4v6 has no router mode (no IPv4 prefix is delegated). */
function familyProblem(host: string, mode: RequestedMode, problems: string[]): void {
  if (mode === 'v4v6' && ipaddr.IPv4.isValidFourPartDecimal(host))
    problems.push('server: tunnel_mode=v4v6 runs TSP over IPv6: give an IPv6 server ([2001:db8::1]) or a host name');
  if (mode !== 'v4v6' && host.includes(':'))
    problems.push(`server: an IPv6 server is for tunnel_mode=v4v6 (${mode} runs TSP over IPv4)`);
}

/** Lays `layers` (file first, flags last) over the defaults and validates. Throws CFG_INVALID listing every
 *  problem as `key: problem`. Returns the model and warnings about ignored keys that would matter to gogoc. */
export function resolveConfig(...layers: RawConfig[]): { config: TspcConfig; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const merged: RawConfig = { ...DEFAULTS };
  const known = new Set<string>([...GOGOC_KEYS, ...TSPC_KEYS]);
  const ignored = new Set<string>(IGNORED_GOGOC_KEYS);
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (known.has(k)) merged[k] = v;
      else if (ignored.has(k)) {
        const why = IGNORED_BUT_NOTED[k];
        if (k === 'proxy_client' && yesNo(v) === true) problems.push('proxy_client: yes is not supported by tspc');
        else if (why && v !== '' && yesNo(v) !== false) warnings.push(`${k}=${v} ignored: ${why}`);
      } else problems.push(`${k}: unknown key`);
    }
  }
  const int = (key: ConfigKey, min: number, max: number): number => {
    const v = merged[key]!;
    if (!/^\d{1,7}$/.test(v) || Number(v) < min || Number(v) > max) {
      problems.push(`${key}: must be a whole number from ${min} to ${max} (got "${v}")`);
      return min;
    }
    return Number(v);
  };
  const bool = (key: ConfigKey): boolean => {
    const b = yesNo(merged[key]!);
    if (b === undefined) problems.push(`${key}: must be yes or no (got "${merged[key]}")`);
    return b ?? false;
  };
  const oneOf = <T extends string>(key: ConfigKey, values: readonly T[], why = ''): T => {
    const v = merged[key]!.toLowerCase();
    if (!values.includes(v as T)) {
      problems.push(`${key}: must be one of ${values.join(', ')} (got "${merged[key]}")${why}`);
      return values[0]!;
    }
    return v as T;
  };
  const ifname = (key: ConfigKey, optional: boolean): string => {
    const v = merged[key]!;
    if ((optional && v === '') || IFNAME.test(v)) return v;
    problems.push(`${key}: "${v}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
    return '';
  };

  const parsed = merged.server!.split(',').map((t) => parseServer(t.trim()));
  for (const p of parsed) if (typeof p === 'string') problems.push(`server: ${p}`);
  if (parsed.length > MAX_SERVERS) problems.push(`server: at most ${MAX_SERVERS} servers`);
  const servers = parsed.filter((p) => typeof p !== 'string');
  const server = parsed[0]!;
  const userid = merged.userid!;
  if (merged.auth_method === '') merged.auth_method = userid === '' ? 'anonymous' : 'any';
  const authMethod = oneOf('auth_method', ['any', 'anonymous', 'plain', 'digest-md5'] as const);
  if (merged.auth_method!.toLowerCase() === 'passdss-3des-1')
    problems.push('auth_method: passdss-3des-1 is proprietary and not supported (use any or digest-md5)');
  if (authMethod !== 'anonymous' && userid === '') problems.push(`userid: required for auth_method ${authMethod}`);
  const hostType = oneOf('host_type', ['host', 'router'] as const);
  const tunnelMode = oneOf('tunnel_mode', ['v6anyv4', 'v6v4', 'v6udpv4', 'v4v6'] as const);
  for (const s of servers) familyProblem(s.host, tunnelMode, problems);
  const transport = oneOf('transport', ['udp', 'tcp'] as const);
  if (transport === 'tcp' && tunnelMode === 'v6udpv4')
    problems.push('transport: v6udpv4 runs over the TSP UDP flow; use transport=udp or tunnel_mode=v6v4');
  const clientV4 = merged.client_v4!;
  if (clientV4 !== 'auto' && !ipaddr.IPv4.isValidFourPartDecimal(clientV4))
    problems.push(`client_v4: must be auto or an IPv4 address (got "${clientV4}")`);
  const clientV6 = merged.client_v6!;
  if (clientV6 !== 'auto' && !(ipaddr.IPv6.isValid(clientV6) && !clientV6.includes('%')))
    problems.push(`client_v6: must be auto or an IPv6 address (got "${clientV6}")`);
  const retryDelayS = int('retry_delay', 0, 3600);
  const retryDelayMaxS = int('retry_delay_max', 0, 3600);
  if (retryDelayMaxS < retryDelayS) problems.push('retry_delay_max: must be ≥ retry_delay');
  const defaultRoute = merged.default_route === '' ? true : bool('default_route');
  const config: TspcConfig = {
    server: typeof server === 'string' ? { host: '', port: TSP_PORT, text: '' } : server,
    servers,
    userid,
    passwd: merged.passwd!,
    authMethod,
    hostType,
    prefixLen: int('prefixlen', 0, 64),
    lanInterface: ifname('if_prefix', true),
    dnsServers: nameServers(merged.dns_server!, problems),
    ra: oneOf('ra', RA_MODES, ' (router advertisements on the LAN in router mode)'),
    tunnelMode,
    transport,
    keepalive: bool('keepalive'),
    keepaliveIntervalS: int('keepalive_interval', 1, 3600),
    keepaliveMisses: int('keepalive_misses', 1, 100),
    keepaliveTimeoutS: int('keepalive_timeout', 1, 60),
    tunV6udpv4: ifname('if_tunnel_v6udpv4', false),
    tunV6v4: ifname('if_tunnel_v6v4', false),
    tunV4v6: ifname('if_tunnel_v4v6', false),
    clientV4,
    clientV6,
    defaultRoute,
    autoRetryConnect: bool('auto_retry_connect'),
    retryDelayS,
    retryDelayMaxS,
    hook: merged.hook!,
    statusFile: merged.status_file!,
    logLevel: oneOf('log_level', ['info', 'error', 'warn', 'debug'] as const),
  };
  if (config.statusFile === '') problems.push('status_file: must not be empty');
  if (tunnelMode === 'v4v6' && hostType === 'router')
    problems.push('host_type: router mode is not offered for v4v6 (no IPv4 prefix is delegated); use host');
  if (problems.length) throw new BrokerError('CFG_INVALID', problems.join('\n'));
  return { config, warnings };
}
