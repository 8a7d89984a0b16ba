/** @module admin/views/nodes: the cluster's nodes (docs/cluster.md): alive or dead, draining, tunnels, capacity,
 *  last heartbeat, with a drain or undrain button each. With SQLite, a note that the broker is the only node. */

import { html, type SafeHtml } from '../html.js';
import type { NodeRecord } from '../../store/types.js';
import { csrfField, flashNote, formatAge, layout, when, type Viewer } from './layout.js';

export function nodesPage(
  v: Viewer,
  p: { clustered: boolean; self: string; now: number; nodes: (NodeRecord & { alive: boolean })[]; flash?: string },
): SafeHtml {
  const body = !p.clustered
    ? html`<p class="muted" data-testid="single-node">
        This broker keeps its state in SQLite, so it is the only node. Several nodes share a PostgreSQL store: see
        docs/cluster.md.
      </p>`
    : html`<table data-testid="nodes">
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">Status</th>
              <th scope="col">Tunnels</th>
              <th scope="col">Capacity</th>
              <th scope="col">Addresses</th>
              <th scope="col">Last heartbeat</th>
              <th scope="col"></th>
            </tr>
          </thead>
          <tbody>
            ${p.nodes.map(
              (n) =>
                html`<tr data-node="${n.name}">
                  <td class="mono">
                    ${n.name}${n.name === p.self ? html` <span class="muted">(this one)</span>` : ''}
                  </td>
                  <td>
                    <span class="badge">${n.alive ? 'alive' : 'dead'}</span>${
                      n.draining ? html` <span class="badge">draining</span>` : ''
                    }
                  </td>
                  <td>${n.tunnels}</td>
                  <td>${n.capacity ?? '-'}</td>
                  <td class="mono">${[n.ipv4, n.ipv6].filter((a) => a !== null).join(' ') || '-'}</td>
                  <td title="${when(n.heartbeatAt)}">
                    ${n.heartbeatAt === 0 ? 'stopped cleanly' : `${formatAge(p.now - n.heartbeatAt)} ago`}
                  </td>
                  <td>
                    <form method="post" action="/nodes/${n.name}/${n.draining ? 'undrain' : 'drain'}">
                      ${csrfField(v)}<button class="secondary" type="submit">
                        ${n.draining ? 'Undrain' : 'Drain'}
                      </button>
                    </form>
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>
        <p class="muted">
          A draining node takes no new tunnels: it answers new sessions with a redirect (TSP 1200) to live nodes that
          are not draining, least loaded first. Its clients move as they reconnect.
        </p>`;
  return layout(
    'Nodes',
    v,
    '/nodes',
    html`<h1>Nodes</h1>
      ${flashNote(p.flash)}
      <div class="card">${body}</div>`,
  );
}
