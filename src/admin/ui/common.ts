/** @module admin/ui/common: what the web UI's routes share: form fields, the signed-in viewer, sending a page,
 *  and the redirect after a successful POST with the message the next page shows (`done`, `flashOf`). */

import type { FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../../errors.js';
import type { Principal } from '../auth.js';
import type { SafeHtml } from '../html.js';
import type { Viewer } from '../views/layout.js';

/** A parsed form body (admin/server.ts): a repeated key (checkbox groups) is an array. */
export type Form = Record<string, string | string[] | undefined>;

/** Messages shown after a redirect, by key: the query string carries only the key and a subject. */
const DONE: Record<string, (subject: string) => string> = {
  created: (s) => `Account ${s} created.`,
  password: (s) => `Password of ${s} changed.`,
  disabled: (s) => `${s} disabled; its live tunnels were ended.`,
  enabled: (s) => `${s} enabled.`,
  deleted: (s) => `${s} deleted.`,
  limits: (s) => `Limits of ${s} saved.`,
  killed: (s) => `Tunnel ${s} ended.`,
  killblocked: (s) => {
    const [id, minutes] = s.split(':');
    return `Tunnel ${id} ended; its owner gets no new tunnel for ${minutes} minutes.`;
  },
  revoked: (s) => `Token ${s} revoked.`,
  ownpassword: () => 'Your password was changed.',
  rdns: () => 'Reverse DNS name servers saved and published.',
  staticcreated: (s) => `Static tunnel ${s} created.`,
  staticendpoint: (s) => `Endpoint set: ${s}.`,
  staticdeleted: (s) => `Static tunnel ${s} removed.`,
  drained: (s) => `Node ${s} is draining: it redirects new sessions to other nodes.`,
  undrained: (s) => `Node ${s} takes new sessions again.`,
};

export function flashOf(req: FastifyRequest): string | undefined {
  const q = req.query as Record<string, string | undefined>;
  const f = q.done ? DONE[q.done] : undefined;
  return f?.(q.subject ?? '');
}

export function field(form: Form, name: string): string {
  const v = form[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : '';
}

/** The signed-in account as the views show it; null for a token or no caller (admin/server.ts's error page). */
export function viewerOf(p: Principal | null | undefined, selfService?: boolean): Viewer | null {
  return p?.kind === 'session'
    ? {
        username: p.account.username,
        role: p.account.role,
        csrfToken: p.csrfToken,
        ...(selfService === undefined ? {} : { selfService }),
      }
    : null;
}

export function viewer(p: Principal): Viewer {
  const v = viewerOf(p);
  if (!v) throw new BrokerError('API_FORBIDDEN', 'the web UI needs a signed-in account, not a token');
  return v;
}

export function page(reply: FastifyReply, body: SafeHtml): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(body.text);
}

export function done(reply: FastifyReply, to: string, key: string, subject = ''): FastifyReply {
  const sep = to.includes('?') ? '&' : '?';
  return reply.redirect(`${to}${sep}done=${key}&subject=${encodeURIComponent(subject)}`, 303);
}

/** A page offset from the query string; anything else than a whole number is 0. */
export function offsetOf(raw: string | undefined): number {
  return Math.max(0, Math.trunc(Number(raw ?? 0)) || 0);
}
