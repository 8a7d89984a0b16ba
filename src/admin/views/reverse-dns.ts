/** @module admin/views/reverse-dns: the /me page's reverse-DNS card: the name servers the account's prefix is
 *  delegated to, what the DNS server holds, and the form that changes them (broker/reverse-dns.ts). */

import { html, type SafeHtml } from '../html.js';
import { csrfField, type Viewer } from './layout.js';

export interface ReverseDnsView {
  servers: string[];
  published: string[];
  error: string | null;
  /** The account's delegated prefix (CIDR), or null before its first router-mode tunnel. */
  prefix: string | null;
  maxNameServers: number;
}

function state(r: ReverseDnsView): SafeHtml {
  if (r.prefix === null)
    return html`<p class="muted" id="rdns-state">
      You have no delegated prefix yet: the name servers below apply once you connect in router mode.
    </p>`;
  if (r.error !== null)
    return html`<p class="error" id="rdns-state">
      Not published yet: ${r.error}. The broker retries every 30 seconds.
    </p>`;
  return r.published.length
    ? html`<p class="note" id="rdns-state">
        Delegated: <code>${r.published.join(', ')}</code> to <code>${r.servers.join(', ')}</code>.
      </p>`
    : html`<p class="muted" id="rdns-state">The reverse zone of ${r.prefix} is not delegated.</p>`;
}

export function reverseDnsCard(v: Viewer, r: ReverseDnsView): SafeHtml {
  return html`<div class="card">
    <h2>Reverse DNS</h2>
    ${state(r)}
    <form method="post" action="/me/reverse-dns" id="reverse-dns">
      ${csrfField(v)}
      <label class="field"
        >Name servers for your prefix's reverse zone (host names, one per line, at most ${String(r.maxNameServers)};
        empty to withdraw)
        <textarea name="servers" rows="3" spellcheck="false" autocomplete="off">${r.servers.join('\n')}</textarea>
      </label>
      <button type="submit">Save</button>
    </form>
  </div>`;
}
