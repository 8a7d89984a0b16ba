/** @module admin/views/audit: the audit log, filtered by actor, action, target and UTC days, newest first. */

import { html, type SafeHtml } from '../html.js';
import type { AuditEvent } from '../../store/types.js';
import { layout, pager, when, type Viewer } from './layout.js';

/** The audit page's filters as typed: from and to are UTC days (YYYY-MM-DD), both included. */
export interface AuditFilterForm {
  action: string;
  actor: string;
  target: string;
  from: string;
  to: string;
}

export function auditPage(
  v: Viewer,
  p: { items: AuditEvent[]; total: number; offset: number; limit: number } & AuditFilterForm,
): SafeHtml {
  const q = (offset: number) => {
    const u = new URLSearchParams();
    for (const k of ['action', 'actor', 'target', 'from', 'to'] as const) if (p[k]) u.set(k, p[k]);
    u.set('offset', String(offset));
    return `/audit?${u.toString()}`;
  };
  return layout(
    'Audit log',
    v,
    '/audit',
    html`<h1>Audit log</h1>
      <div class="card">
        <form method="get" action="/audit" class="row" id="audit-filters">
          <label class="field"
            >Actor contains
            <input type="search" name="actor" placeholder="e.g. root, token:, web:" value="${p.actor}" maxlength="128"
          /></label>
          <label class="field"
            >Action
            <input type="search" name="action" placeholder="e.g. account.create" value="${p.action}" maxlength="64"
          /></label>
          <label class="field"
            >Target contains
            <input type="search" name="target" placeholder="e.g. alice, tunnel id" value="${p.target}" maxlength="128"
          /></label>
          <label class="field">From (UTC day) <input type="date" name="from" value="${p.from}" /></label>
          <label class="field">To (UTC day, included) <input type="date" name="to" value="${p.to}" /></label>
          <button class="secondary" type="submit">Filter</button>
          <a href="/audit">Clear</a>
          <span class="muted" data-testid="audit-count">${p.total} event(s)</span>
        </form>
        <table>
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Detail</th>
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
        ${pager({ offset: p.offset, limit: p.limit, shown: p.items.length, total: p.total }, q, ['← Newer', 'Older →'])}
      </div>`,
  );
}
