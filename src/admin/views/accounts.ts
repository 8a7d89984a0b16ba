/** @module admin/views/accounts: the account list with its creation form, and an account's page (password,
 *  limits, disable or delete, recent tunnels). */

import { html, type SafeHtml } from '../html.js';
import type { Account, TunnelRecord } from '../../store/types.js';
import { csrfField, flashNote, layout, pager, when, type Viewer } from './layout.js';
import { TUNNEL_TYPES } from '../../tunnel-model.js';
import { recentTunnelsCard } from './tunnels.js';

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
      ${flashNote(flash)}
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
                  <td>${stateBadge(a)}</td>
                  <td>${when(a.createdAt)}</td>
                  <td><a href="/accounts/${encodeURIComponent(a.username)}">Manage</a></td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${pager({ offset: p.offset, limit: p.limit, shown: p.items.length, total: p.total }, q)}
      </div>`,
  );
}

export function accountPage(
  v: Viewer,
  a: Account,
  tunnels: TunnelRecord[],
  now: number,
  flash?: string,
  staticCard: SafeHtml | '' = '',
): SafeHtml {
  const base = `/accounts/${encodeURIComponent(a.username)}`;
  return layout(
    a.username,
    v,
    '/accounts',
    html`<h1>
        ${a.username}
        <span class="badge">${a.role}</span>
        ${stateBadge(a)}
      </h1>
      ${flashNote(flash)}
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
      ${limitsCard(v, a, base)} ${staticCard} ${accessCard(v, a, base)} ${recentTunnelsCard(v, tunnels, now)}`,
  );
}

function stateBadge(a: Account): SafeHtml {
  return a.disabled ? html`<span class="badge off">disabled</span>` : html`<span class="badge ok">active</span>`;
}

/** The tunnel types and prefix lengths the account may ask for; empty: the broker's defaults. */
function limitsCard(v: Viewer, a: Account, base: string): SafeHtml {
  const types = a.limits.tunnelTypes ?? [];
  return html`<div class="card">
    <h2>Limits</h2>
    <form method="post" action="${base}/limits" class="row">
      ${csrfField(v)}
      ${TUNNEL_TYPES.map(
        (t) =>
          html`<label
            ><input type="checkbox" name="tunnelTypes" value="${t}" ${types.includes(t) ? 'checked' : ''} /> ${t}</label
          >`,
      )}
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
  </div>`;
}

/** Disable or enable, and delete: both end the account's live tunnels (asked for confirmation). */
function accessCard(v: Viewer, a: Account, base: string): SafeHtml {
  return html`<div class="card">
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
  </div>`;
}
