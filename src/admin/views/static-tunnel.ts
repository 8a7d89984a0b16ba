/** @module admin/views/static-tunnel: the static 6in4 tunnel card of an account's page (operators) and of /me
 *  (the account holder): create it, see its endpoint and addresses, set the endpoint, make an update key
 *  (shown once, in the reply that made it), a ddclient example, remove it. `base` is where its forms post:
 *  `/accounts/<name>/static-tunnel` or `/me/static-tunnel`. */

import { html, type SafeHtml } from '../html.js';
import type { StaticTunnelView } from '../../broker/static-tunnels.js';
import { csrfField, type Viewer } from './layout.js';

export interface StaticCardOptions {
  /** Where the forms post. */
  base: string;
  /** The default host name offered when there is none yet (the username). */
  username: string;
  /** host:port of the dyndns2 endpoint for the ddclient example (placeholders where unknown), and whether it
   *  serves TLS. */
  update: { server: string; tls: boolean };
  /** A key just made: shown this once. */
  newKey?: string;
}

export function ddclientConf(
  st: Pick<StaticTunnelView, 'hostname' | 'username'>,
  update: { server: string; tls: boolean },
  key?: string,
): string {
  return [
    '# /etc/ddclient.conf',
    'usev4=ifv4, ifv4=eth0        # the interface with your public IPv4',
    'protocol=dyndns2',
    `ssl=${update.tls ? 'yes' : 'no'}`,
    `server=${update.server}`,
    `login=${st.username}`,
    `password='${key ?? 'YOUR-UPDATE-KEY'}'`,
    st.hostname,
    '',
  ].join('\n');
}

function createForm(v: Viewer, o: StaticCardOptions): SafeHtml {
  return html`<p class="muted">
      No static tunnel. A static 6in4 tunnel needs no TSP client: any router's built-in 6in4 (protocol 41) works, and a
      dyndns2 client keeps its IPv4 endpoint current.
    </p>
    <form method="post" action="${o.base}" class="row" id="create-static">
      ${csrfField(v)}
      <label class="field"
        >Host name <input name="hostname" type="text" maxlength="253" value="${o.username.toLowerCase()}" required
      /></label>
      <label class="field"
        >Endpoint (your public IPv4, optional) <input name="endpoint" type="text" maxlength="15" inputmode="decimal"
      /></label>
      <label><input type="checkbox" name="delegatePrefix" value="1" /> with my delegated prefix</label>
      <button type="submit">Create static tunnel</button>
    </form>`;
}

function details(st: StaticTunnelView): SafeHtml {
  const t = st.tunnel;
  const rows: [string, string][] = [
    ['Host name (hostname=)', st.hostname],
    ['Endpoint (my IPv4)', st.endpoint ?? 'not set'],
    [
      'State',
      t ? 'live' : st.endpoint ? 'not live (account disabled, or ended by an operator)' : 'waiting for an endpoint',
    ],
    ['Broker IPv4 (remote end)', t?.serverIpv4 ?? '—'],
    ['My IPv6 address', t ? `${t.clientIpv6}/64` : '—'],
    ['Broker IPv6 address (gateway)', t?.serverIpv6 ?? '—'],
    ['Delegated prefix', t?.prefix ? `${t.prefix}/${t.prefixLen}` : st.delegatePrefix ? 'when live' : '—'],
    ['Update key', st.hasUpdateKey ? 'set (shown only when made)' : 'none'],
  ];
  return html`<table id="static-details">
    ${rows.map(
      ([label, value]) =>
        html`<tr>
          <th scope="row">${label}</th>
          <td class="mono">${value}</td>
        </tr>`,
    )}
  </table>`;
}

function forms(v: Viewer, st: StaticTunnelView, o: StaticCardOptions): SafeHtml {
  return html`<form method="post" action="${o.base}/endpoint" class="row" id="static-endpoint">
      ${csrfField(v)}
      <label class="field"
        >New endpoint
        <input name="endpoint" type="text" maxlength="15" inputmode="decimal" required value="${st.endpoint ?? ''}"
      /></label>
      <button type="submit">Set endpoint</button>
    </form>
    <div class="row">
      <form
        class="inline"
        method="post"
        action="${o.base}/update-key"
        id="static-new-key"
        ${st.hasUpdateKey ? html`data-confirm="Make a new update key? The old one stops working."` : ''}
      >
        ${csrfField(v)}<button class="secondary" type="submit">New update key</button>
      </form>
      <form
        class="inline"
        method="post"
        action="${o.base}/delete"
        data-confirm="Remove the static tunnel ${st.hostname}? It ends at once."
      >
        ${csrfField(v)}<button class="danger" type="submit">Remove static tunnel</button>
      </form>
    </div>`;
}

export function staticTunnelCard(v: Viewer, st: StaticTunnelView | undefined, o: StaticCardOptions): SafeHtml {
  if (!st)
    return html`<div class="card" id="static-tunnel">
      <h2>Static 6in4 tunnel</h2>
      ${createForm(v, o)}
    </div>`;
  return html`<div class="card" id="static-tunnel">
    <h2>Static 6in4 tunnel</h2>
    ${details(st)}
    ${
      o.newKey
        ? html`<p class="note" id="static-key">
            Update key (shown this once): <code id="static-key-value">${o.newKey}</code>. Use it as the password of
            dyndns2 updates.
          </p>`
        : ''
    }
    ${forms(v, st, o)}
    <h3>dyndns2 updates (ddclient)</h3>
    <p class="muted">
      <code>GET /nic/update?hostname=${st.hostname}&amp;myip=ADDR</code> with basic auth: your username and your
      password or the update key. Without <code>myip</code>, the address the request comes from.
    </p>
    <pre id="ddclient-conf">${ddclientConf(st, o.update, o.newKey)}</pre>
  </div>`;
}
