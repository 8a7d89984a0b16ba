/** @module admin/views: the web UI's pages as functions from data to HTML (admin/html.ts escapes every value).
 *  No I/O here: ui.ts gathers the data and picks the view. Every state-changing form carries the session's
 *  CSRF token in `_csrf`; destructive ones ask for confirmation through `data-confirm` (assets.ts). */

import { html, trusted, type SafeHtml } from './html.js';
import type { Account, ApiToken, AuditEvent, PoolUsage, TunnelRecord } from '../store/types.js';
import type { TrafficSample } from './traffic.js';
import { MAX_EXPIRY_DAYS } from './tokens.js';

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

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${units[i]}`;
}

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

/** An SVG line chart of rx/tx rates between consecutive samples. Numbers only: no request data reaches it. */
export function trafficChart(samples: readonly TrafficSample[]): SafeHtml {
  // about the size it is drawn at on a desktop screen, so the 11px labels stay 11px
  const W = 1100;
  const H = 220;
  const L = 64;
  const B = 24;
  const rates: { at: number; rx: number; tx: number }[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = Math.max(1, b.at - a.at) / 1000;
    rates.push({ at: b.at, rx: (b.rxBytes - a.rxBytes) / dt, tx: (b.txBytes - a.txBytes) / dt });
  }
  const max = Math.max(1024, ...rates.map((r) => Math.max(r.rx, r.tx)));
  const x = (i: number) => L + (rates.length <= 1 ? 0 : (i * (W - L - 8)) / (rates.length - 1));
  const y = (v: number) => 8 + (H - B - 8) * (1 - v / max);
  const line = (key: 'rx' | 'tx') => rates.map((r, i) => `${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`).join(' ');
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const yy = y(max * f).toFixed(1);
      return `<line x1="${L}" x2="${W - 8}" y1="${yy}" y2="${yy}" stroke="#e3e8ef"/><text x="${L - 6}" y="${yy}" dy="4" text-anchor="end" font-size="11" fill="#5b6678">${formatBytes(max * f)}/s</text>`;
    })
    .join('');
  const span = rates.length >= 2 ? formatAge(rates[rates.length - 1]!.at - rates[0]!.at) : '';
  const body =
    rates.length < 2
      ? `<text x="${(W + L) / 2}" y="${H / 2}" text-anchor="middle" font-size="13" fill="#5b6678">collecting samples…</text>`
      : `<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="${line('rx')}"/><polyline fill="none" stroke="#e8710a" stroke-width="2" points="${line('tx')}"/>` +
        `<text x="${L}" y="${H - 6}" font-size="11" fill="#5b6678">${span} ago</text><text x="${W - 8}" y="${H - 6}" text-anchor="end" font-size="11" fill="#5b6678">now</text>`;
  return trusted(
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Tunnel traffic over time">${grid}${body}</svg>`,
  );
}

export interface DashboardData {
  liveTunnels: number;
  byType: Record<string, number>;
  halfOpen: number;
  accounts: number;
  samples: readonly TrafficSample[];
  totals: { rxBytes: number; txBytes: number };
  pools: PoolUsage[];
}

export function dashboardLive(d: DashboardData): SafeHtml {
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
      <h2>Traffic</h2>
      <div class="legend muted">
        <span><i style="background:#1f6feb"></i>from clients (rx) · total ${formatBytes(d.totals.rxBytes)}</span
        ><span><i style="background:#e8710a"></i>to clients (tx) · total ${formatBytes(d.totals.txBytes)}</span>
      </div>
      ${trafficChart(d.samples)}
    </div>`;
}

export function dashboardPage(v: Viewer, d: DashboardData): SafeHtml {
  return layout(
    'Dashboard',
    v,
    '/',
    html`<h1>Dashboard</h1>
      <div id="live">${dashboardLive(d)}</div>
      <div class="card">
        <h2>Address pools</h2>
        ${poolTable(d.pools)}
      </div>`,
  );
}

// ---------------------------------------------------------------- tunnels

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
              ? html`<form
                  class="inline"
                  method="post"
                  action="/tunnels/${t.id}/kill"
                  data-confirm="End tunnel ${t.id} of ${t.username ?? 'anonymous'} now?"
                >
                  ${csrfField(v)}<button class="danger" type="submit">Kill</button>
                </form>`
              : html`<span class="muted">${t.state}${t.endReason ? ` (${t.endReason})` : ''}</span>`
          }
        </td>
      </tr>`,
  )}`;
}

const TUNNEL_HEAD = html`<thead>
  <tr>
    <th>ID</th>
    <th>Account</th>
    <th>Type</th>
    <th>Endpoint</th>
    <th>Addresses</th>
    <th>Age</th>
    <th>Last seen</th>
    <th class="num">Rx pkts / bytes</th>
    <th class="num">Tx pkts / bytes</th>
    <th></th>
  </tr>
</thead>`;

export function tunnelsPage(
  v: Viewer,
  live: TunnelRecord[],
  recent: TunnelRecord[],
  now: number,
  flash?: string,
): SafeHtml {
  return layout(
    'Tunnels',
    v,
    '/tunnels',
    html`<h1>Tunnels</h1>
      ${flash ? html`<div class="flash" role="status">${flash}</div>` : ''}
      <div class="card">
        <div class="row">
          <h2 style="margin:0;flex:1">Live (${live.length})</h2>
          <a href="/tunnels">Refresh</a>
        </div>
        <table id="live-tunnels">
          ${TUNNEL_HEAD}
          <tbody>
            ${tunnelRows(v, live, now, true)}
          </tbody>
        </table>
      </div>
      <div class="card">
        <h2>Recently ended</h2>
        <table id="recent-tunnels">
          ${TUNNEL_HEAD}
          <tbody>
            ${tunnelRows(v, recent, now, false)}
          </tbody>
        </table>
      </div>`,
  );
}

export function tunnelPage(v: Viewer, t: TunnelRecord & { live: boolean }, now: number): SafeHtml {
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
                <th>${k}</th>
                <td class="mono">${val}</td>
              </tr>`,
          )}
        </table>
        ${t.live ? html`<p><form class="inline" method="post" action="/tunnels/${t.id}/kill" data-confirm="End tunnel ${t.id} now?">${csrfField(v)}<button class="danger" type="submit">Kill tunnel</button></form></p>` : ''}
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

export function auditPage(
  v: Viewer,
  p: { items: AuditEvent[]; total: number; offset: number; limit: number; action: string },
): SafeHtml {
  const q = (offset: number) => `/audit?offset=${offset}${p.action ? `&action=${encodeURIComponent(p.action)}` : ''}`;
  return layout(
    'Audit log',
    v,
    '/audit',
    html`<h1>Audit log</h1>
      <div class="card">
        <form method="get" action="/audit" class="row">
          <input type="search" name="action" placeholder="action, e.g. account.create" value="${p.action}" /><button
            class="secondary"
            type="submit"
          >
            Filter</button
          ><span class="muted">${p.total} event(s)</span>
        </form>
        <table>
          <thead>
            <tr>
              <th>Time (UTC)</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Detail</th>
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
              <pre id="new-token">${created.token}</pre>
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
                      <th>Type</th>
                      <td>${t.type} over ${t.transport}</td>
                    </tr>
                    <tr>
                      <th>Endpoint</th>
                      <td class="mono">${endpoint(t)}</td>
                    </tr>
                    <tr>
                      <th>My IPv6 address</th>
                      <td class="mono">${t.clientIpv6}</td>
                    </tr>
                    <tr>
                      <th>Broker IPv6 address</th>
                      <td class="mono">${t.serverIpv6}</td>
                    </tr>
                    <tr>
                      <th>Delegated prefix</th>
                      <td class="mono">${t.prefix ? `${t.prefix}/${t.prefixLen}` : '—'}</td>
                    </tr>
                    <tr>
                      <th>Up for</th>
                      <td>${formatAge(now - (t.establishedAt ?? t.createdAt))}</td>
                    </tr>
                    <tr>
                      <th>Traffic</th>
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
