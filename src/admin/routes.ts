/** @module admin/routes: what the REST API (admin/api.ts) and the web UI (admin/ui.ts) routes share: the role a
 *  route declares in `config.role`, the authenticated caller on the request, and the limits check JSON Schema
 *  cannot express. */

import type { FastifyRequest } from 'fastify';
import { BrokerError } from '../errors.js';
import type { AccountLimits } from '../store/types.js';
import type { AdminContext } from './context.js';
import type { Principal } from './auth.js';

/** 'public' (no credential), 'any' (any signed-in account or token) or 'admin' (the default). */
export type RouteRole = 'public' | 'any' | 'admin';

declare module 'fastify' {
  /** Documentation only: fastify ignores them, admin/openapi.ts publishes them. */
  interface FastifySchema {
    summary?: string;
    tags?: string[];
  }
  interface FastifyContextConfig {
    role?: RouteRole;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The authenticated caller; routes marked 'any' or 'admin' always have one (the hook guarantees it). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new BrokerError('API_UNAUTHORIZED', 'authentication required');
  return req.principal;
}

/** The onRequest check of both front ends: identifies the caller unless the route is public, and refuses a
 *  missing credential (API_UNAUTHORIZED) or a missing admin role (API_FORBIDDEN) with each front end's words.
 *  Returns the caller, or null on a public route. */
export async function authenticate(
  ctx: AdminContext,
  req: FastifyRequest,
  refusals: { unauthorized: string; forbidden: string },
): Promise<Principal | null> {
  const role = req.routeOptions.config.role ?? 'admin';
  if (role === 'public') return null;
  const p = await ctx.auth.identify(req);
  if (!p) throw new BrokerError('API_UNAUTHORIZED', refusals.unauthorized);
  req.principal = p;
  if (role === 'admin' && p.role !== 'admin') throw new BrokerError('API_FORBIDDEN', refusals.forbidden);
  return p;
}

/** What JSON Schema cannot say: min <= max. */
export function checkLimits(l: AccountLimits | undefined): void {
  if (l?.minPrefixLen !== undefined && l.maxPrefixLen !== undefined && l.minPrefixLen > l.maxPrefixLen)
    throw new BrokerError('API_BAD_REQUEST', 'limits.minPrefixLen must be ≤ limits.maxPrefixLen');
}
