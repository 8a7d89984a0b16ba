/** @module admin/views/dashboard: the dashboard: live counts, the traffic chart of a chosen range, the top
 *  talkers and the pools. `dashboardLive` is also served alone at /dashboard/live for the page's refresh. */

import { html, trusted, type SafeHtml } from '../html.js';
import type { TunnelRecord } from '../../store/types.js';
import { RANGES, RANGE_KEYS, type RangeKey, type RangeRates } from '../history.js';
import { chartLegend, formatBytes, formatRate, trafficChart } from '../chart.js';
import { layout, type Viewer } from './layout.js';
import { poolTable, type PoolRow } from './pools.js';
import { innerAddress } from '../../tunnel-model.js';

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
  pools: PoolRow[];
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
            <td class="mono">${innerAddress(t.tunnel)}</td>
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
