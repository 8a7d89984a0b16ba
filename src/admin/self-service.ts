/** @module admin/self-service: the second listener (config.selfService) for tunnel holders. It feeds its
 *  requests into the same fastify app as the admin listener (`app.routing`), so sessions, sign-in throttling
 *  and the CSRF key are shared, and marks each of them; the app's first onRequest hook (`selfServiceGuard`)
 *  lets a marked request reach only the routes in SELF_SERVICE_ROUTES. Everything else there is 404: admin
 *  pages, /api/v1 (including the OpenAPI document and its reference), /metrics, /healthz. The list names
 *  matched route patterns, not request paths, so no spelling of a path can reach another route. */

import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BrokerError } from '../errors.js';

/** The only routes the self-service listener serves ('/' redirects to /me). */
export const SELF_SERVICE_ROUTES: ReadonlySet<string> = new Set([
  '/login',
  '/logout',
  '/me',
  '/me/password',
  '/me/reverse-dns',
  '/assets/app.css',
  '/assets/app.js',
  '/favicon.ico',
  '/favicon.svg',
  '/me/static-tunnel',
  '/me/static-tunnel/endpoint',
  '/me/static-tunnel/update-key',
  '/me/static-tunnel/delete',
  '/nic/update',
]);

const marked = new WeakSet<http.IncomingMessage>();

/** The request came in on the self-service listener. */
export function isSelfService(req: FastifyRequest): boolean {
  return marked.has(req.raw);
}

/** onRequest hook, first on the app: confines self-service requests to SELF_SERVICE_ROUTES. */
export async function selfServiceGuard(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
  if (!isSelfService(req)) return;
  const route = req.routeOptions.url;
  if (route === '/' && req.method === 'GET') return reply.redirect('/me', 303);
  if (route === undefined || !SELF_SERVICE_ROUTES.has(route))
    throw new BrokerError('API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
}

export interface SelfServiceListener {
  port: number;
  close(): Promise<void>;
}

/** Listens on address:port (HTTPS with tls) and hands every request to the app, marked as self-service. */
export async function listenSelfService(
  app: FastifyInstance,
  opts: { address: string; port: number; tls: { cert: string; key: string } | null },
): Promise<SelfServiceListener> {
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    marked.add(req);
    app.routing(req, res);
  };
  const server = opts.tls
    ? https.createServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, handle)
    : http.createServer(handle);
  // same bounds as fastify's own server: no request may hold a socket forever
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
