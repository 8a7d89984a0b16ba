/** @module admin/views/tokens: the API tokens page: the list, the creation form, and a new token shown once. */

import { html, type SafeHtml } from '../html.js';
import type { ApiToken } from '../../store/types.js';
import { MAX_EXPIRY_DAYS } from '../tokens.js';
import { csrfField, flashNote, layout, when, type Viewer } from './layout.js';

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
      ${flashNote(flash)} ${created ? createdCard(created) : ''}
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
            ${tokens.map((t) => tokenRow(v, t, now))}
          </tbody>
        </table>
      </div>`,
  );
}

/** The new token's value, shown in the creation's reply only (never stored in clear, never in a URL). */
function createdCard(created: { name: string; token: string }): SafeHtml {
  return html`<div class="card">
    <h2>Token ${created.name} created</h2>
    <p>Copy it now: it is not shown again.</p>
    <div class="token-row">
      <pre id="new-token">${created.token}</pre>
      <button type="button" id="copy-token" data-copy="#new-token" data-copy-status="#copy-status">Copy</button>
    </div>
    <p id="copy-status" class="muted" role="status" aria-live="polite"></p>
    <p class="muted">Use it as <code>Authorization: Bearer …</code> on /api/v1.</p>
  </div>`;
}

function tokenRow(v: Viewer, t: ApiToken, now: number): SafeHtml {
  return html`<tr>
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
  </tr>`;
}
