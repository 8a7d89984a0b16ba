/** @module admin/views/me: the account holder's page (/me, also on the self-service listener): the live
 *  tunnel, the static 6in4 tunnel (views/static-tunnel.ts), client configuration snippets for gogoc and tspc,
 *  the password form and recent tunnels. */

import { html, type SafeHtml } from '../html.js';
import type { Account, TunnelRecord } from '../../store/types.js';
import { formatBytes } from '../chart.js';
import { csrfField, endpoint, flashNote, formatAge, layout, type Viewer } from './layout.js';
import { recentTunnelsCard } from './tunnels.js';
import { reverseDnsCard, type ReverseDnsView } from './reverse-dns.js';

export interface ClientConfig {
  /** host or host:port of the TSP server; null: the operator configured no public address. */
  server: string | null;
  username: string;
  hostType: 'host' | 'router';
  prefixLen: number | null;
}

const SERVER_UNKNOWN = 'BROKER-ADDRESS';

/** Next to the snippets: where server= comes from, or that the operator has not configured it. */
function serverNote(c: ClientConfig): SafeHtml {
  return c.server === null
    ? html`<p class="error" id="server-unknown">
        This broker has no public address configured, so <code>server=</code> shows a placeholder: ask your operator for
        the broker's address (they can set <code>admin.publicTspHost</code> or <code>serverIpv4</code>).
      </p>`
    : html`<p class="note">
        Broker address: <code id="server-address">${c.server}</code>. Replace YOUR-PASSWORD with your password.
      </p>`;
}

/** The keys both clients read alike (tspc reads gogoc.conf's keys): where, who, and what tunnel to ask for. */
function accountKeys(c: ClientConfig): string[] {
  return [
    `server=${c.server ?? SERVER_UNKNOWN}`,
    `userid=${c.username}`,
    `passwd=YOUR-PASSWORD`,
    `auth_method=digest-md5`,
    `tunnel_mode=v6anyv4`,
    `host_type=${c.hostType}`,
  ];
}

export function gogocConf(c: ClientConfig): string {
  return [
    `# gogoc.conf for ${c.username}`,
    ...accountKeys(c),
    ...(c.hostType === 'router' ? [`prefixlen=${c.prefixLen ?? 56}`, 'if_prefix=eth1'] : []),
    `template=linux`,
    `keepalive=yes`,
    `keepalive_interval=30`,
    '',
  ].join('\n');
}

export function tspcConf(c: ClientConfig): string {
  return [
    `# tspc.conf (gogoc.conf keys): run  tspc --config tspc.conf`,
    ...accountKeys(c),
    ...(c.hostType === 'router' ? [`prefixlen=${c.prefixLen ?? 56}`] : []),
    '',
  ].join('\n');
}

export function mePage(
  v: Viewer,
  a: Account,
  live: TunnelRecord[],
  recent: TunnelRecord[],
  cfg: ClientConfig,
  now: number,
  flash?: string,
  rdns?: ReverseDnsView,
  staticCard: SafeHtml | '' = '',
): SafeHtml {
  return layout(
    'My account',
    v,
    '/me',
    html`<h1>${a.username}</h1>
      ${flashNote(flash)}
      <div class="card">
        <h2>My tunnel</h2>
        ${
          live.length
            ? live.map((t) => liveTunnelTable(t, now))
            : html`<p class="muted">No live tunnel. Configure your client with the settings below.</p>`
        }
      </div>
      ${staticCard}
      <div class="card">
        <h2>gogoc (gogoCLIENT 1.2)</h2>
        ${serverNote(cfg)}
        <pre id="gogoc-conf">${gogocConf(cfg)}</pre>
      </div>
      <div class="card">
        <h2>tspc</h2>
        <pre id="tspc-conf">${tspcConf(cfg)}</pre>
      </div>
      ${rdns ? reverseDnsCard(v, rdns) : ''}
      <div class="card">
        <h2>Change password</h2>
        <form method="post" action="/me/password" class="row" id="change-password">
          ${csrfField(v)}
          <label class="field"
            >Current password
            <input name="currentPassword" type="password" required autocomplete="current-password" />
          </label>
          <label class="field"
            >New password (8+ characters)
            <input name="newPassword" type="password" required minlength="8" autocomplete="new-password" />
          </label>
          <button type="submit">Change</button>
        </form>
      </div>
      ${recentTunnelsCard(v, recent, now)}`,
  );
}

function liveTunnelTable(t: TunnelRecord, now: number): SafeHtml {
  const rows: [label: string, value: string, mono: boolean][] = [
    ['Type', `${t.type} over ${t.transport}`, false],
    ['Endpoint', endpoint(t), true],
    ...((t.type === 'v4v6'
      ? [
          ['My IPv4 address', t.clientIpv4, true],
          ['Broker IPv4 address', t.serverIpv4, true],
        ]
      : [
          ['My IPv6 address', t.clientIpv6, true],
          ['Broker IPv6 address', t.serverIpv6, true],
        ]) as [string, string, boolean][]),
    ['Delegated prefix', t.prefix ? `${t.prefix}/${t.prefixLen}` : '—', true],
    ['Up for', formatAge(now - (t.establishedAt ?? t.createdAt)), false],
    ['Traffic', `received ${formatBytes(t.rxBytes)}, sent ${formatBytes(t.txBytes)}`, false],
  ];
  return html`<table>
    ${rows.map(
      ([label, value, mono]) =>
        html`<tr>
          <th scope="row">${label}</th>
          ${mono ? html`<td class="mono">${value}</td>` : html`<td>${value}</td>`}
        </tr>`,
    )}
  </table>`;
}
