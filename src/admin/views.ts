/** @module admin/views: the web UI's pages as functions from data to HTML (admin/html.ts escapes every value).
 *  No I/O here: ui.ts gathers the data and picks the view. Every state-changing form carries the session's
 *  CSRF token in `_csrf`; destructive ones ask for confirmation through `data-confirm` (assets.ts). */

import { html, trusted, type SafeHtml } from './html.js';
import type { Account, ApiToken, AuditEvent, Page, PoolUsage, TunnelRecord, TunnelSort } from '../store/types.js';
import type { TunnelType } from '../dataplane/types.js';
import { RANGES, RANGE_KEYS, type RangeKey, type RangeRates, type RatePoint } from './history.js';
import { chartLegend, formatBytes, formatRate, trafficChart } from './chart.js';
import { MAX_EXPIRY_DAYS } from './tokens.js';
import { MAX_BLOCK_MINUTES } from '../broker/blocks.js';

export interface Viewer {
  username: string;
  role: 'admin' | 'user';
  csrfToken: string;
  /** Rendered by the self-service listener, which serves only the account holder's pages: no admin links. */
  selfService?: boolean;
}

const ADMIN_NAV = [
  ['/', 'Dashboard'],
  ['/tunnels', 'Tunnels'],
  ['/accounts', 'Accounts'],
  ['/pools', 'Pools'],
  ['/audit', 'Audit log'],
  ['/tokens', 'API tokens'],
  ['/me', 'My account'],
] as const;
const USER_NAV = [['/me', 'My account']] as const;

export function csrfField(v: Viewer): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${v.csrfToken}" />`;
}

export function layout(title: string, v: Viewer | null, active: string, body: SafeHtml): SafeHtml {
  const nav = v ? (v.role === 'admin' && !v.selfService ? ADMIN_NAV : USER_NAV) : [];
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · tsp-broker</title>
        <link rel="stylesheet" href="/assets/app.css" />
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
        <script src="/assets/app.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        ${
          v
            ? html`<header>
                <span class="brand">tsp-broker</span>
                <nav aria-label="Main">
                  ${nav.map(([href, label]) =>
                    href === active
                      ? html`<a href="${href}" class="active" aria-current="page">${label}</a>`
                      : html`<a href="${href}">${label}</a>`,
                  )}
                </nav>
                <div class="who">
                  <span>${v.username} <span class="badge">${v.role}</span></span>
                  <form class="inline" method="post" action="/logout">
                    ${csrfField(v)}<button class="secondary" type="submit">Sign out</button>
                  </form>
                </div>
              </header>`
            : ''
        }
        <main id="main" tabindex="-1">${body}</main>
      </body>
    </html>`;
}

export function loginPage(p: { csrf: string; next: string; error?: string; username?: string }): SafeHtml {
  return layout(
    'Sign in',
    null,
    '',
    html`<div class="card login">
      <h1>tsp-broker</h1>
      ${p.error ? html`<div class="error" role="alert">${p.error}</div>` : ''}
      <form method="post" action="/login">
        <input type="hidden" name="_csrf" value="${p.csrf}" /><input type="hidden" name="next" value="${p.next}" />
        <label for="username">Username</label
        ><input
          id="username"
          name="username"
          type="text"
          autocomplete="username"
          required
          ${p.username ? '' : html`autofocus`}
          value="${p.username ?? ''}"
        />
        <label for="password">Password</label
        ><input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          ${p.username ? html`autofocus` : ''}
        />
        <button type="submit">Sign in</button>
      </form>
    </div>`,
  );
}

export function errorPage(v: Viewer | null, status: number, code: string, message: string): SafeHtml {
  return layout(
    'Error',
    v,
    '',
    html`<div class="card">
      <h1>${status === 403 ? 'Not allowed' : status === 404 ? 'Not found' : 'Something went wrong'}</h1>
      <div class="error" role="alert"><span class="mono">${code}</span>: ${message}</div>
      <p><a href="javascript:history.back()">Back</a> · <a href="/">Home</a></p>
    </div>`,
  );
}

// ---------------------------------------------------------------- formatting

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function when(ms: number | null): string {
  return ms === null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function endpoint(t: TunnelRecord): string {
  return t.type === 'v6v4' ? t.clientIpv4 : `${t.clientIpv4}:${t.clientPort}`;
}

// ---------------------------------------------------------------- dashboard

export interface TopTalker {
  tunnel: TunnelRecord;
  rxBytes: number;
  txBytes: number;
  spanMs: number;
}

export interface DashboardData {
  liveTunnels: number;
  byType: Record<string, number>;
  halfOpen: number;
  accounts: number;
  /** The chosen range's rates (admin/history.ts). */
  history: RangeRates;
  totals: { rxBytes: number; txBytes: number };
  /** Live tunnels that moved the most over their in-memory history (10 minutes at most). */
  talkers: TopTalker[];
  pools: PoolUsage[];
}

function rangeChooser(current: RangeKey): SafeHtml {
  return html`<nav class="ranges" aria-label="Time range">
    ${RANGE_KEYS.map(
      (k) =>
        html`<a
          href="/?range=${k}"
          class="${k === current ? 'active' : ''}"
          ${k === current ? trusted('aria-current="true"') : ''}
          >${RANGES[k].label}</a
        >`,
    )}
  </nav>`;
}

function talkersTable(talkers: TopTalker[]): SafeHtml {
  if (!talkers.length) return html`<p class="muted">No live tunnel has carried traffic in the last 10 minutes.</p>`;
  return html`<table id="top-talkers">
    <thead>
      <tr>
        <th scope="col">Tunnel</th>
        <th scope="col">Account</th>
        <th scope="col">Addresses</th>
        <th scope="col" class="num">Rx</th>
        <th scope="col" class="num">Tx</th>
        <th scope="col" class="num">Average</th>
      </tr>
    </thead>
    <tbody>
      ${talkers.map(
        (t) =>
          html`<tr data-tunnel-id="${t.tunnel.id}">
            <td><a href="/tunnels/${t.tunnel.id}">${t.tunnel.id}</a></td>
            <td>${t.tunnel.username ?? html`<span class="muted">anonymous</span>`}</td>
            <td class="mono">${t.tunnel.clientIpv6}</td>
            <td class="num">${formatBytes(t.rxBytes)}</td>
            <td class="num">${formatBytes(t.txBytes)}</td>
            <td class="num">${formatRate(((t.rxBytes + t.txBytes) * 1000) / Math.max(1, t.spanMs))}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function dashboardLive(d: DashboardData): SafeHtml {
  const r = RANGES[d.history.range];
  return html`<div class="grid">
      <div class="stat">
        <div class="label">Live tunnels</div>
        <div class="value" data-testid="live-count">${d.liveTunnels}</div>
      </div>
      ${Object.entries(d.byType).map(
        ([t, n]) =>
          html`<div class="stat">
            <div class="label">${t}</div>
            <div class="value">${n}</div>
          </div>`,
      )}
      <div class="stat">
        <div class="label">Negotiating</div>
        <div class="value">${d.halfOpen}</div>
      </div>
      <div class="stat">
        <div class="label">Accounts</div>
        <div class="value">${d.accounts}</div>
      </div>
    </div>
    <div class="card">
      <div class="row">
        <h2 style="margin:0;flex:1">Traffic, last ${r.label}</h2>
        ${rangeChooser(d.history.range)}
      </div>
      ${chartLegend(
        `from clients (rx) · since start ${formatBytes(d.totals.rxBytes)}`,
        `to clients (tx) · since start ${formatBytes(d.totals.txBytes)}`,
      )}
      ${trafficChart(d.history.points, {
        from: d.history.from,
        to: d.history.to,
        label: `Tunnel traffic over the last ${r.label}: rx above the axis, tx below`,
        empty: d.history.range === '10m' ? 'collecting samples…' : 'no stored traffic in this range yet',
      })}
      <p class="muted small">
        ${
          d.history.range === '10m'
            ? 'Every 5 s, kept in memory.'
            : `Stored every 30 s and kept 8 days; one point per ${r.bucketLabel}. Gaps: the broker was not running.`
        }
        Hover the chart for values.
      </p>
    </div>
    <div class="card">
      <h2>Top talkers <span class="muted small">(live tunnels, last 10 minutes)</span></h2>
      ${talkersTable(d.talkers)}
    </div>`;
}

export function dashboardPage(v: Viewer, d: DashboardData): SafeHtml {
  return layout(
    'Dashboard',
    v,
    '/',
    html`<h1>Dashboard</h1>
      <div id="live" data-refresh="/dashboard/live?range=${d.history.range}">${dashboardLive(d)}</div>
      <div class="card">
        <h2>Address pools</h2>
        ${poolTable(d.pools)}
      </div>`,
  );
}

// ---------------------------------------------------------------- tunnels

/** Kill, and kill and block for N minutes (broker/blocks.ts). A killed client usually reconnects about 80 s
 *  later, which the page says next to the buttons; in a table row the blocking form folds into a <details>. */
export function killForms(v: Viewer, t: TunnelRecord, where: 'row' | 'page'): SafeHtml {
  const who = t.username ?? `anonymous (${t.clientIpv4})`;
  const blocked = t.username ? `account ${t.username}` : `source address ${t.clientIpv4}`;
  const block = html`<form
    method="post"
    action="/tunnels/${t.id}/kill"
    class="row kill-block"
    data-confirm="End tunnel ${t.id} of ${who} and refuse the ${blocked} new tunnels for the chosen minutes?"
  >
    ${csrfField(v)}<label class="field"
      >Block for (minutes)
      <input type="number" name="blockMinutes" min="1" max="${MAX_BLOCK_MINUTES}" step="1" value="15" required
    /></label>
    <button class="danger" type="submit">Kill and block</button>
  </form>`;
  const note = html`Its client usually reconnects about 80 s after a kill. Kill and block refuses the ${blocked} new
  tunnels until the block ends (kept in memory: a broker restart lifts it).`;
  const kill = html`<form
    class="inline"
    method="post"
    action="/tunnels/${t.id}/kill"
    data-confirm="End tunnel ${t.id} of ${who} now? Its client usually reconnects about 80 s later."
  >
    ${csrfField(v)}<button class="danger" type="submit" title="The client usually reconnects about 80 s later">
      ${where === 'row' ? 'Kill' : 'Kill tunnel'}
    </button>
  </form>`;
  return where === 'row'
    ? html`${kill}
        <details class="kill-more">
          <summary>Block…</summary>
          <p class="note">${note}</p>
          ${block}
        </details>`
    : html`<div class="kill">
        <p class="note" id="kill-note">${note}</p>
        <div class="row">${kill}</div>
        ${block}
      </div>`;
}

function tunnelRows(v: Viewer, items: TunnelRecord[], now: number, killable: boolean): SafeHtml {
  if (!items.length)
    return html`<tr>
      <td colspan="10" class="muted">none</td>
    </tr>`;
  return html`${items.map(
    (t) =>
      html`<tr data-tunnel-id="${t.id}">
        <td><a href="/tunnels/${t.id}">${t.id}</a></td>
        <td>${t.username ?? html`<span class="muted">anonymous</span>`}</td>
        <td><span class="badge">${t.type}</span> <span class="muted">${t.transport}</span></td>
        <td class="mono">${endpoint(t)}</td>
        <td class="mono">${t.clientIpv6}${t.prefix ? html`<br />${t.prefix}/${t.prefixLen}` : ''}</td>
        <td>${formatAge(now - (t.establishedAt ?? t.createdAt))}</td>
        <td>${t.lastSeenAt ? `${formatAge(now - t.lastSeenAt)} ago` : '—'}</td>
        <td class="num">${t.rxPackets} / ${formatBytes(t.rxBytes)}</td>
        <td class="num">${t.txPackets} / ${formatBytes(t.txBytes)}</td>
        <td>
          ${
            killable
              ? killForms(v, t, 'row')
              : html`<span class="muted">${t.state}${t.endReason ? ` (${t.endReason})` : ''}</span>`
          }
        </td>
      </tr>`,
  )}`;
}

/** The head of the tables of tunnels that cannot be killed from there: the last column is their state and end
 *  reason. (The live list's own head names that column "Actions", for screen readers only.) */
const TUNNEL_HEAD = html`<thead>
  <tr>
    <th scope="col">ID</th>
    <th scope="col">Account</th>
    <th scope="col">Type</th>
    <th scope="col">Endpoint</th>
    <th scope="col">Addresses</th>
    <th scope="col">Age</th>
    <th scope="col">Last seen</th>
    <th scope="col" class="num">Rx pkts / bytes</th>
    <th scope="col" class="num">Tx pkts / bytes</th>
    <th scope="col">State</th>
  </tr>
</thead>`;

/** Rows a page of the tunnel list shows. */
export const TUNNEL_PAGE = 25;

/** The tunnel list's query string, parsed leniently (an unknown value falls back to its default). There is no
 *  node filter: every tunnel of this broker runs on this one node (docs/admin.md). */
export interface TunnelListQuery {
  state: 'live' | 'ended' | 'all';
  search: string;
  type: '' | TunnelType;
  account: string;
  sort: TunnelSort;
  order: 'asc' | 'desc';
  offset: number;
}

const SORTS: readonly TunnelSort[] = ['started', 'account', 'type', 'traffic'];

export function tunnelListQuery(q: Record<string, string | undefined>): TunnelListQuery {
  const one = <T extends string>(v: string | undefined, allowed: readonly T[], dflt: T): T =>
    allowed.includes(v as T) ? (v as T) : dflt;
  return {
    state: one(q.state, ['live', 'ended', 'all'] as const, 'live'),
    search: (q.search ?? '').trim().slice(0, 64),
    type: one(q.type, ['', 'v6v4', 'v6udpv4'] as const, ''),
    account: (q.account ?? '').trim().slice(0, 64),
    sort: one(q.sort, SORTS, 'started'),
    order: one(q.order, ['asc', 'desc'] as const, 'desc'),
    offset: Math.max(0, Math.trunc(Number(q.offset ?? 0)) || 0),
  };
}

function tunnelListUrl(path: string, q: TunnelListQuery, over: Partial<TunnelListQuery> = {}): string {
  const all = { ...q, ...over };
  const p = new URLSearchParams();
  if (all.state !== 'live') p.set('state', all.state);
  if (all.search) p.set('search', all.search);
  if (all.type) p.set('type', all.type);
  if (all.account) p.set('account', all.account);
  if (all.sort !== 'started' || all.order !== 'desc') {
    p.set('sort', all.sort);
    p.set('order', all.order);
  }
  if (all.offset) p.set('offset', String(all.offset));
  const qs = p.toString();
  return qs ? `${path}?${qs}` : path;
}

/** A column header that sorts by `key`: first click most/latest first for numbers, A–Z for text; the next
 *  click reverses. */
function sortHeader(q: TunnelListQuery, key: TunnelSort, label: string, attrs = ''): SafeHtml {
  const active = q.sort === key;
  const first = key === 'account' || key === 'type' ? 'asc' : 'desc';
  const order = active ? (q.order === 'asc' ? 'desc' : 'asc') : first;
  const arrow = active ? (q.order === 'asc' ? ' ▲' : ' ▼') : '';
  return html`<th
    scope="col"
    ${trusted(attrs)}
    aria-sort="${active ? (q.order === 'asc' ? 'ascending' : 'descending') : 'none'}"
  >
    <a class="sort" data-sort="${key}" href="${tunnelListUrl('/tunnels', q, { sort: key, order, offset: 0 })}"
      >${label}${arrow}</a
    >
  </th>`;
}

/** The list card's content: the count, the table and the pager. Also served alone at /tunnels/list, which the
 *  page's script fetches every 5 s while the tab is visible. */
export function tunnelList(v: Viewer, q: TunnelListQuery, list: Page<TunnelRecord>, now: number): SafeHtml {
  const live = q.state === 'live';
  const first = list.total === 0 ? 0 : q.offset + 1;
  const last = q.offset + list.items.length;
  return html`<div class="row">
      <h2 style="margin:0;flex:1">
        ${live ? 'Live' : q.state === 'ended' ? 'Ended' : 'All'} tunnels
        <span class="muted" data-testid="tunnel-count">(${list.total})</span>
      </h2>
      <span class="muted">showing ${first}–${last} · refreshes every 5 s</span>
    </div>
    <table id="${live ? 'live-tunnels' : 'tunnels'}">
      <thead>
        <tr>
          <th scope="col">ID</th>
          ${sortHeader(q, 'account', 'Account')} ${sortHeader(q, 'type', 'Type')}
          <th scope="col">Endpoint</th>
          <th scope="col">Addresses</th>
          ${sortHeader(q, 'started', 'Started (age)')}
          <th scope="col">Last seen</th>
          ${sortHeader(q, 'traffic', 'Traffic rx · tx (pkts / bytes)', 'class="num" colspan="2"')}
          <th scope="col">${live ? html`<span class="sr-only">Actions</span>` : 'State'}</th>
        </tr>
      </thead>
      <tbody>
        ${tunnelRows(v, list.items, now, live)}
      </tbody>
    </table>
    <div class="pager">
      ${q.offset > 0 ? html`<a rel="prev" href="${tunnelListUrl('/tunnels', q, { offset: Math.max(0, q.offset - TUNNEL_PAGE) })}">← Previous</a>` : ''}${last < list.total ? html`<a rel="next" href="${tunnelListUrl('/tunnels', q, { offset: q.offset + TUNNEL_PAGE })}">Next →</a>` : ''}
    </div>`;
}

export function tunnelsPage(
  v: Viewer,
  q: TunnelListQuery,
  list: Page<TunnelRecord>,
  recent: TunnelRecord[] | null,
  now: number,
  flash?: string,
): SafeHtml {
  const option = (value: string, label: string, current: string) =>
    html`<option value="${value}" ${value === current ? trusted('selected') : ''}>${label}</option>`;
  return layout(
    'Tunnels',
    v,
    '/tunnels',
    html`<h1>Tunnels</h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      <div class="card">
        <form method="get" action="/tunnels" class="row" id="tunnel-filters">
          <label class="field"
            >Search account or address
            <input type="search" name="search" placeholder="e.g. alice, 192.0.2.7, 2001:db8:" value="${q.search}"
          /></label>
          <label class="field"
            >State
            <select name="state">
              ${option('live', 'live', q.state)}${option('ended', 'ended', q.state)}${option('all', 'all', q.state)}
            </select></label
          >
          <label class="field"
            >Type
            <select name="type">
              ${option('', 'any', q.type)}${option('v6v4', 'v6v4', q.type)}${option('v6udpv4', 'v6udpv4', q.type)}
            </select></label
          >
          <label class="field">Account (exact) <input type="text" name="account" value="${q.account}" /></label>
          <input type="hidden" name="sort" value="${q.sort}" /><input type="hidden" name="order" value="${q.order}" />
          <button class="secondary" type="submit">Filter</button>
          <a href="/tunnels">Clear</a>
        </form>
        <div id="tunnel-list" data-refresh="${tunnelListUrl('/tunnels/list', q)}">${tunnelList(v, q, list, now)}</div>
      </div>
      ${
        recent
          ? html`<div class="card">
              <h2>Recently ended</h2>
              <table id="recent-tunnels">
                ${TUNNEL_HEAD}
                <tbody>
                  ${tunnelRows(v, recent, now, false)}
                </tbody>
              </table>
              <p><a href="/tunnels?state=ended">All ended tunnels →</a></p>
            </div>`
          : ''
      }`,
  );
}

export function tunnelPage(
  v: Viewer,
  t: TunnelRecord & { live: boolean },
  now: number,
  traffic: { points: RatePoint[]; from: number; to: number },
): SafeHtml {
  const rows: [string, string | SafeHtml][] = [
    ['Account', t.username ?? 'anonymous'],
    ['State', t.live ? 'live' : `${t.state}${t.endReason ? ` (${t.endReason})` : ''}`],
    ['Type / transport', `${t.type} / ${t.transport}`],
    ['Client endpoint', endpoint(t)],
    ['Server IPv4', t.serverIpv4],
    ['Server IPv6', t.serverIpv6],
    ['Client IPv6', t.clientIpv6],
    ['Delegated prefix', t.prefix ? `${t.prefix}/${t.prefixLen}` : '—'],
    ['Keepalive', `${t.keepaliveInterval} s`],
    ['Created', when(t.createdAt)],
    ['Established', when(t.establishedAt)],
    ['Ended', when(t.endedAt)],
    ['Last seen', t.lastSeenAt ? `${when(t.lastSeenAt)} (${formatAge(now - t.lastSeenAt)} ago)` : '—'],
    ['Received', `${t.rxPackets} packets, ${formatBytes(t.rxBytes)}`],
    ['Sent', `${t.txPackets} packets, ${formatBytes(t.txBytes)}`],
  ];
  return layout(
    `Tunnel ${t.id}`,
    v,
    '/tunnels',
    html`<h1>Tunnel ${t.id}</h1>
      <div class="card">
        <table>
          ${rows.map(
            ([k, val]) =>
              html`<tr>
                <th scope="row">${k}</th>
                <td class="mono">${val}</td>
              </tr>`,
          )}
        </table>
        ${t.live ? killForms(v, t, 'page') : ''}
      </div>
      <div class="card" id="tunnel-traffic">
        <h2>Traffic of this tunnel</h2>
        ${chartLegend('from the client (rx)', 'to the client (tx)')}
        ${trafficChart(traffic.points, {
          from: traffic.from,
          to: traffic.to,
          label: `Traffic of tunnel ${t.id}: rx above the axis, tx below`,
          empty: t.live ? 'collecting samples…' : 'no graph: it is kept in memory only while the tunnel is live',
        })}
        <p class="muted small">
          Every 5 s while the tunnel is live, the last 10 minutes, in memory (gone when it ends or the broker restarts).
          Reload for new samples.
        </p>
      </div>`,
  );
}

// ---------------------------------------------------------------- accounts

export function accountsPage(
  v: Viewer,
  p: { items: Account[]; total: number; search: string; offset: number; limit: number },
  flash?: string,
): SafeHtml {
  const q = (offset: number) => `/accounts?search=${encodeURIComponent(p.search)}&offset=${offset}`;
  return layout(
    'Accounts',
    v,
    '/accounts',
    html`<h1>Accounts</h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      <div class="card">
        <h2>New account</h2>
        <form method="post" action="/accounts" class="row" id="create-account">
          ${csrfField(v)}
          <label class="field"
            >Username
            <input name="username" type="text" required maxlength="64" autocomplete="off" />
          </label>
          <label class="field"
            >Password (8+ characters)
            <input name="password" type="password" required minlength="8" autocomplete="new-password" />
          </label>
          <label class="field"
            >Role
            <select name="role">
              <option value="user">user</option>
              <option value="admin">admin</option>
            </select>
          </label>
          <button type="submit">Create</button>
        </form>
      </div>
      <div class="card">
        <form method="get" action="/accounts" class="row">
          <input
            type="search"
            name="search"
            placeholder="search usernames"
            aria-label="Search usernames"
            value="${p.search}"
          /><button class="secondary" type="submit">Search</button><span class="muted">${p.total} account(s)</span>
        </form>
        <table>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Role</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            ${p.items.map(
              (a) =>
                html`<tr>
                  <td><a href="/accounts/${encodeURIComponent(a.username)}">${a.username}</a></td>
                  <td>${a.role}</td>
                  <td>
                    ${a.disabled ? html`<span class="badge off">disabled</span>` : html`<span class="badge ok">active</span>`}
                  </td>
                  <td>${when(a.createdAt)}</td>
                  <td><a href="/accounts/${encodeURIComponent(a.username)}">Manage</a></td>
                </tr>`,
            )}
          </tbody>
        </table>
        <div class="pager">
          ${p.offset > 0 ? html`<a href="${q(Math.max(0, p.offset - p.limit))}">← Previous</a>` : ''}${p.offset + p.items.length < p.total ? html`<a href="${q(p.offset + p.limit)}">Next →</a>` : ''}
        </div>
      </div>`,
  );
}

export function accountPage(v: Viewer, a: Account, tunnels: TunnelRecord[], now: number, flash?: string): SafeHtml {
  const base = `/accounts/${encodeURIComponent(a.username)}`;
  const types = a.limits.tunnelTypes ?? [];
  return layout(
    a.username,
    v,
    '/accounts',
    html`<h1>
        ${a.username}
        <span class="badge">${a.role}</span>
        ${a.disabled ? html`<span class="badge off">disabled</span>` : html`<span class="badge ok">active</span>`}
      </h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      <div class="card">
        <h2>Reset password</h2>
        <form
          method="post"
          action="${base}/password"
          class="row"
          id="reset-password"
          data-confirm="Set a new password for ${a.username}?"
        >
          ${csrfField(v)}
          <label class="field"
            >New password (8+ characters)
            <input name="password" type="password" required minlength="8" autocomplete="new-password" /></label
          ><button type="submit">Set password</button>
        </form>
      </div>
      <div class="card">
        <h2>Limits</h2>
        <form method="post" action="${base}/limits" class="row">
          ${csrfField(v)}
          <label
            ><input type="checkbox" name="tunnelTypes" value="v6v4" ${types.includes('v6v4') ? 'checked' : ''} />
            v6v4</label
          >
          <label
            ><input type="checkbox" name="tunnelTypes" value="v6udpv4" ${types.includes('v6udpv4') ? 'checked' : ''} />
            v6udpv4</label
          >
          <label
            >prefix length from /<input
              type="number"
              name="minPrefixLen"
              min="16"
              max="64"
              value="${a.limits.minPrefixLen ?? ''}"
          /></label>
          <label
            >to /<input type="number" name="maxPrefixLen" min="16" max="64" value="${a.limits.maxPrefixLen ?? ''}"
          /></label>
          <button class="secondary" type="submit">Save limits</button>
        </form>
        <p class="muted">No box ticked and empty lengths: the broker's defaults.</p>
      </div>
      <div class="card">
        <h2>Access</h2>
        <div class="row">
          <form
            class="inline"
            method="post"
            action="${base}/${a.disabled ? 'enable' : 'disable'}"
            ${a.disabled ? '' : html`data-confirm="Disable ${a.username} and end its live tunnels?"`}
          >
            ${csrfField(v)}<button class="secondary" type="submit">${a.disabled ? 'Enable' : 'Disable'}</button>
          </form>
          <form
            class="inline"
            method="post"
            action="${base}/delete"
            data-confirm="Delete ${a.username}? Its live tunnels end and its addresses are released."
          >
            ${csrfField(v)}<button class="danger" type="submit">Delete account</button>
          </form>
        </div>
      </div>
      <div class="card">
        <h2>Recent tunnels</h2>
        <table>
          ${TUNNEL_HEAD}
          <tbody>
            ${tunnelRows(v, tunnels, now, false)}
          </tbody>
        </table>
      </div>`,
  );
}

// ---------------------------------------------------------------- pools, audit, tokens

function poolTable(pools: PoolUsage[]): SafeHtml {
  return html`<table>
    <thead>
      <tr>
        <th scope="col">Pool</th>
        <th scope="col">Prefix</th>
        <th scope="col" class="num">Allocated blocks</th>
        <th scope="col">Capacity used</th>
      </tr>
    </thead>
    <tbody>
      ${pools.map((p) => {
        const len = Number(p.poolPrefix.split('/')[1]);
        // link blocks are /64s; delegation blocks vary, so their share is shown against /64-sized capacity only for link
        const capacity = p.pool === 'link' ? 2 ** Math.min(52, 64 - len) : undefined;
        const pct = capacity ? Math.min(100, (100 * p.blocks) / capacity) : undefined;
        return html`<tr>
          <td>${p.pool}</td>
          <td class="mono">${p.poolPrefix}</td>
          <td class="num">${p.blocks}</td>
          <td>
            ${
              pct === undefined
                ? html`<span class="muted">varies with prefix length</span>`
                : html`<div class="bar" title="${pct.toFixed(4)}%">
                      <div style="width:${Math.max(pct, 0.5).toFixed(2)}%"></div>
                    </div>
                    <span class="muted">${p.blocks} of ${capacity} /64s</span>`
            }
          </td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

export function poolsPage(v: Viewer, pools: PoolUsage[]): SafeHtml {
  return layout(
    'Pools',
    v,
    '/pools',
    html`<h1>Address pools</h1>
      <div class="card">${poolTable(pools)}</div>`,
  );
}

/** The audit page's filters as typed: from and to are UTC days (YYYY-MM-DD), both included. */
export interface AuditFilterForm {
  action: string;
  actor: string;
  target: string;
  from: string;
  to: string;
}

export function auditPage(
  v: Viewer,
  p: { items: AuditEvent[]; total: number; offset: number; limit: number } & AuditFilterForm,
): SafeHtml {
  const q = (offset: number) => {
    const u = new URLSearchParams();
    for (const k of ['action', 'actor', 'target', 'from', 'to'] as const) if (p[k]) u.set(k, p[k]);
    u.set('offset', String(offset));
    return `/audit?${u.toString()}`;
  };
  return layout(
    'Audit log',
    v,
    '/audit',
    html`<h1>Audit log</h1>
      <div class="card">
        <form method="get" action="/audit" class="row" id="audit-filters">
          <label class="field"
            >Actor contains
            <input type="search" name="actor" placeholder="e.g. root, token:, web:" value="${p.actor}" maxlength="128"
          /></label>
          <label class="field"
            >Action
            <input type="search" name="action" placeholder="e.g. account.create" value="${p.action}" maxlength="64"
          /></label>
          <label class="field"
            >Target contains
            <input type="search" name="target" placeholder="e.g. alice, tunnel id" value="${p.target}" maxlength="128"
          /></label>
          <label class="field">From (UTC day) <input type="date" name="from" value="${p.from}" /></label>
          <label class="field">To (UTC day, included) <input type="date" name="to" value="${p.to}" /></label>
          <button class="secondary" type="submit">Filter</button>
          <a href="/audit">Clear</a>
          <span class="muted" data-testid="audit-count">${p.total} event(s)</span>
        </form>
        <table>
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            ${p.items.map(
              (e) =>
                html`<tr>
                  <td>${when(e.at)}</td>
                  <td class="mono">${e.actor}</td>
                  <td><span class="badge">${e.action}</span></td>
                  <td class="mono">${e.target ?? ''}</td>
                  <td class="mono muted">${e.detail ? JSON.stringify(e.detail) : ''}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        <div class="pager">
          ${p.offset > 0 ? html`<a href="${q(Math.max(0, p.offset - p.limit))}">← Newer</a>` : ''}${p.offset + p.items.length < p.total ? html`<a href="${q(p.offset + p.limit)}">Older →</a>` : ''}
        </div>
      </div>`,
  );
}

export function tokensPage(
  v: Viewer,
  tokens: ApiToken[],
  created?: { name: string; token: string },
  flash?: string,
  now = Date.now(),
): SafeHtml {
  return layout(
    'API tokens',
    v,
    '/tokens',
    html`<h1>API tokens</h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      ${
        created
          ? html`<div class="card">
              <h2>Token ${created.name} created</h2>
              <p>Copy it now: it is not shown again.</p>
              <div class="token-row">
                <pre id="new-token">${created.token}</pre>
                <button type="button" id="copy-token" data-copy="#new-token" data-copy-status="#copy-status">
                  Copy
                </button>
              </div>
              <p id="copy-status" class="muted" role="status" aria-live="polite"></p>
              <p class="muted">Use it as <code>Authorization: Bearer …</code> on /api/v1.</p>
            </div>`
          : ''
      }
      <div class="card">
        <h2>New token</h2>
        <form method="post" action="/tokens" class="row">
          ${csrfField(v)}<label class="field"
            >Name
            <input id="token-name" name="name" type="text" placeholder="e.g. provisioning" required maxlength="64"
          /></label>
          <label class="field"
            >Expires in days (empty: never)
            <input name="expiresInDays" type="number" min="1" max="${MAX_EXPIRY_DAYS}" step="1" /></label
          ><button type="submit">Create</button>
        </form>
      </div>
      <div class="card">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created by</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            ${
              tokens.length
                ? ''
                : html`<tr>
                    <td colspan="6" class="muted">none</td>
                  </tr>`
            }
            ${tokens.map(
              (t) =>
                html`<tr>
                  <td>${t.name}</td>
                  <td class="mono">${t.createdBy}</td>
                  <td>${when(t.createdAt)}</td>
                  <td>${when(t.lastUsedAt)}</td>
                  <td>
                    ${
                      t.expiresAt === null
                        ? html`<span class="muted">never</span>`
                        : t.expiresAt <= now
                          ? html`<strong>expired</strong> ${when(t.expiresAt)}`
                          : when(t.expiresAt)
                    }
                  </td>
                  <td>
                    <form
                      class="inline"
                      method="post"
                      action="/tokens/${encodeURIComponent(t.name)}/revoke"
                      data-confirm="Revoke token ${t.name}? Clients using it stop working."
                    >
                      ${csrfField(v)}<button class="danger" type="submit">Revoke</button>
                    </form>
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>`,
  );
}

// ---------------------------------------------------------------- account holder

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

export function gogocConf(c: ClientConfig): string {
  return [
    `# gogoc.conf for ${c.username}`,
    `server=${c.server ?? SERVER_UNKNOWN}`,
    `userid=${c.username}`,
    `passwd=YOUR-PASSWORD`,
    `auth_method=digest-md5`,
    `tunnel_mode=v6anyv4`,
    `host_type=${c.hostType}`,
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
    `server=${c.server ?? SERVER_UNKNOWN}`,
    `userid=${c.username}`,
    `passwd=YOUR-PASSWORD`,
    `auth_method=digest-md5`,
    `tunnel_mode=v6anyv4`,
    `host_type=${c.hostType}`,
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
): SafeHtml {
  return layout(
    'My account',
    v,
    '/me',
    html`<h1>${a.username}</h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      <div class="card">
        <h2>My tunnel</h2>
        ${
          live.length
            ? live.map(
                (t) =>
                  html`<table>
                    <tr>
                      <th scope="row">Type</th>
                      <td>${t.type} over ${t.transport}</td>
                    </tr>
                    <tr>
                      <th scope="row">Endpoint</th>
                      <td class="mono">${endpoint(t)}</td>
                    </tr>
                    <tr>
                      <th scope="row">My IPv6 address</th>
                      <td class="mono">${t.clientIpv6}</td>
                    </tr>
                    <tr>
                      <th scope="row">Broker IPv6 address</th>
                      <td class="mono">${t.serverIpv6}</td>
                    </tr>
                    <tr>
                      <th scope="row">Delegated prefix</th>
                      <td class="mono">${t.prefix ? `${t.prefix}/${t.prefixLen}` : '—'}</td>
                    </tr>
                    <tr>
                      <th scope="row">Up for</th>
                      <td>${formatAge(now - (t.establishedAt ?? t.createdAt))}</td>
                    </tr>
                    <tr>
                      <th scope="row">Traffic</th>
                      <td>received ${formatBytes(t.rxBytes)}, sent ${formatBytes(t.txBytes)}</td>
                    </tr>
                  </table>`,
              )
            : html`<p class="muted">No live tunnel. Configure your client with the settings below.</p>`
        }
      </div>
      <div class="card">
        <h2>gogoc (gogoCLIENT 1.2)</h2>
        ${serverNote(cfg)}
        <pre id="gogoc-conf">${gogocConf(cfg)}</pre>
      </div>
      <div class="card">
        <h2>tspc</h2>
        <pre id="tspc-conf">${tspcConf(cfg)}</pre>
      </div>
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
      <div class="card">
        <h2>Recent tunnels</h2>
        <table>
          ${TUNNEL_HEAD}
          <tbody>
            ${tunnelRows(v, recent, now, false)}
          </tbody>
        </table>
      </div>`,
  );
}
