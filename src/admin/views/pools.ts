/** @module admin/views/pools: the address pools' usage, as a table on the dashboard and as its own page. */

import { html, type SafeHtml } from '../html.js';
import type { PoolUsage } from '../../store/types.js';
import { layout, type Viewer } from './layout.js';

/** A pool's usage and, for the link pool, the length of its blocks (a /64 or a /126: pools.linkMode). */
export interface PoolRow extends PoolUsage {
  blockLen?: number;
}

export function poolTable(pools: PoolRow[]): SafeHtml {
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
        // link blocks have one length (pools.linkMode); delegation blocks vary, so only the link pool shows a share
        const bits = p.blockLen !== undefined ? p.blockLen - len : undefined;
        const capacity = bits !== undefined ? 2 ** Math.min(52, bits) : undefined;
        // beyond 2^52 a count is not exact in a number (and nobody reads its digits): show the power of two
        const ofWhat = bits !== undefined && bits > 52 ? `2^${bits}` : String(capacity);
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
                    <span class="muted">${p.blocks} of ${ofWhat} /${p.blockLen}s</span>`
            }
          </td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

export function poolsPage(v: Viewer, pools: PoolRow[]): SafeHtml {
  return layout(
    'Pools',
    v,
    '/pools',
    html`<h1>Address pools</h1>
      <div class="card">${poolTable(pools)}</div>`,
  );
}
