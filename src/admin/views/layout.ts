/** @module admin/views/layout: the page frame every web UI page is drawn in (navigation, sign-out), the sign-in
 *  and error pages, and the small pieces the other views share: the CSRF field, the flash message and the
 *  formatting of ages, times and endpoints. Views are functions from data to HTML (admin/html.ts escapes every
 *  value); no I/O here: admin/ui/ gathers the data and picks the view. Every state-changing form carries the
 *  session's CSRF token in `_csrf`; destructive ones ask for confirmation through `data-confirm` (assets.ts). */

import { html, trusted, type SafeHtml } from '../html.js';
import type { TunnelRecord } from '../../store/types.js';
import { endpointLabel } from '../../tunnel-model.js';

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
  ['/nodes', 'Nodes'],
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

export function when(ms: number | null): string {
  return ms === null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function endpoint(t: TunnelRecord): string {
  return endpointLabel(t);
}

/** The message a page shows after a redirect (admin/ui/common.ts `flashOf`). */
export function flashNote(flash: string | undefined): SafeHtml | '' {
  return flash ? html`<div class="flash" role="status">${flash}</div>` : '';
}

/** Links to the previous and next page of a list, each only where there is one; `rel` marks them for scripts
 *  and assistive technology (the tunnel list). */
export function pager(
  at: { offset: number; limit: number; shown: number; total: number },
  href: (offset: number) => string,
  labels: readonly [previous: string, next: string] = ['← Previous', 'Next →'],
  rel = false,
): SafeHtml {
  const attr = (r: string) => (rel ? trusted(`rel="${r}" `) : '');
  return html`<div class="pager">
    ${at.offset > 0 ? html`<a ${attr('prev')}href="${href(Math.max(0, at.offset - at.limit))}">${labels[0]}</a>` : ''}${at.offset + at.shown < at.total ? html`<a ${attr('next')}href="${href(at.offset + at.limit)}">${labels[1]}</a>` : ''}
  </div>`;
}
