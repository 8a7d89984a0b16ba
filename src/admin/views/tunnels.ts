/** @module admin/views/tunnels: the tunnel list (filters, sortable columns, pager; its card refreshed alone from
 *  /tunnels/list), a tunnel's page with its traffic chart, and the kill and kill-and-block forms. The tunnel
 *  rows and their table head are shared with the account pages (admin/views/accounts.ts, me.ts). */

import { html, trusted, type SafeHtml } from '../html.js';
import type { Page, TunnelRecord, TunnelSort } from '../../store/types.js';
import { TUNNEL_TYPES, endpointAddress, innerAddress, type TunnelType } from '../../tunnel-model.js';
import type { RatePoint } from '../history.js';
import { chartLegend, formatBytes, trafficChart } from '../chart.js';
import { MAX_BLOCK_MINUTES } from '../../broker/blocks.js';
import { csrfField, endpoint, flashNote, formatAge, layout, pager, when, type Viewer } from './layout.js';

/** Kill, and kill and block for N minutes (broker/blocks.ts). A killed client usually reconnects about 80 s
 *  later, which the page says next to the buttons; in a table row the blocking form folds into a <details>. */
export function killForms(v: Viewer, t: TunnelRecord, where: 'row' | 'page'): SafeHtml {
  const who = t.username ?? `anonymous (${endpointAddress(t)})`;
  const blocked = t.username ? `account ${t.username}` : `source address ${endpointAddress(t)}`;
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
        <td>
          <span class="badge">${t.type}</span> <span class="muted">${t.transport}</span>${
            t.node && t.node !== 'local' ? html`<br /><span class="muted" data-testid="node">on ${t.node}</span>` : ''
          }
        </td>
        <td class="mono">${endpoint(t)}</td>
        <td class="mono">${innerAddress(t)}${t.prefix ? html`<br />${t.prefix}/${t.prefixLen}` : ''}</td>
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

/** The card of an account's recent tunnels, live or ended, that its pages show (accounts.ts, me.ts). */
export function recentTunnelsCard(v: Viewer, tunnels: TunnelRecord[], now: number): SafeHtml {
  return html`<div class="card">
    <h2>Recent tunnels</h2>
    <table>
      ${TUNNEL_HEAD}
      <tbody>
        ${tunnelRows(v, tunnels, now, false)}
      </tbody>
    </table>
  </div>`;
}

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
    type: one(q.type, ['', 'v6v4', 'v6udpv4', 'v4v6'] as const, ''),
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
    ${pager(
      { offset: q.offset, limit: TUNNEL_PAGE, shown: list.items.length, total: list.total },
      (offset) => tunnelListUrl('/tunnels', q, { offset }),
      undefined,
      true,
    )}`;
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
      ${flashNote(flash)}
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
              ${option('', 'any', q.type)}${TUNNEL_TYPES.map((t) => option(t, t, q.type))}
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
    // a v4v6 tunnel's IPv6 addresses are its endpoints, its IPv4 ones inside (tunnel-model.ts)
    ...((t.type === 'v4v6'
      ? [
          ['Server endpoint', t.serverIpv6],
          ['Server IPv4 (inside)', t.serverIpv4],
          ['Client IPv4 (inside)', t.clientIpv4],
        ]
      : [
          ['Server IPv4', t.serverIpv4],
          ['Server IPv6', t.serverIpv6],
          ['Client IPv6', t.clientIpv6],
        ]) as [string, string][]),
    ['Delegated prefix', t.prefix ? `${t.prefix}/${t.prefixLen}` : '—'],
    ['Keepalive', `${t.keepaliveInterval} s`],
    ...((t.node ? [['Node', t.node]] : []) as [string, string][]),
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
