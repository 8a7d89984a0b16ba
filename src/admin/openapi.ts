/** @module admin/openapi: the OpenAPI 3 document at /api/v1/openapi.json, built from the very schemas the
 *  routes validate with. server.ts feeds every route to `collect` (fastify's onRoute hook) before any is
 *  registered; `document` assembles what was collected. */

import type { RouteOptions } from 'fastify';
import { errorSchema } from './schemas.js';

interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  role: string;
}

/** A body schema that also allows null may be left out (POST /tunnels/{id}/kill). */
function optionalBody(body: unknown): boolean {
  const t = (body as { type?: unknown }).type;
  return Array.isArray(t) && t.includes('null');
}

export class OpenApiBuilder {
  private readonly routes: Collected[] = [];

  constructor(private readonly prefix: string) {}

  collect(r: RouteOptions): void {
    if (!r.url.startsWith(this.prefix) || !r.schema) return;
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const role = (r.config as { role?: string } | undefined)?.role ?? 'admin';
    for (const method of methods) {
      if (method === 'HEAD') continue;
      this.routes.push({ method: method.toLowerCase(), url: r.url, schema: r.schema as Record<string, unknown>, role });
    }
  }

  document(version: string): object {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of this.routes) {
      const path = r.url.slice(this.prefix.length).replace(/:([A-Za-z0-9_]+)/g, '{$1}') || '/';
      const s = r.schema;
      const parameters: object[] = [];
      for (const [where, key] of [
        ['path', 'params'],
        ['query', 'querystring'],
      ] as const) {
        const obj = s[key] as { properties?: Record<string, object>; required?: string[] } | undefined;
        for (const [name, schema] of Object.entries(obj?.properties ?? {}))
          parameters.push({
            name,
            in: where,
            required: where === 'path' || (obj?.required ?? []).includes(name),
            schema,
          });
      }
      const responses: Record<string, object> = {};
      for (const [status, schema] of Object.entries((s.response as Record<string, object>) ?? {})) {
        const desc = (schema as { description?: string }).description ?? (status.startsWith('2') ? 'success' : 'error');
        responses[status] =
          status === '204' ? { description: desc } : { description: desc, content: { 'application/json': { schema } } };
      }
      paths[path] ??= {};
      paths[path][r.method] = {
        summary: s.summary,
        tags: s.tags,
        ...(parameters.length ? { parameters } : {}),
        ...(s.body
          ? { requestBody: { required: !optionalBody(s.body), content: { 'application/json': { schema: s.body } } } }
          : {}),
        responses,
        security: r.role === 'public' ? [] : [{ bearerToken: [] }, { sessionCookie: [] }],
        ...(r.role === 'admin' ? { 'x-role': 'admin' } : {}),
      };
    }
    return {
      openapi: '3.1.0',
      info: {
        title: 'tsp-broker admin API',
        version,
        description:
          'Accounts, tunnels, pools, audit and API tokens of a tsp-broker. Errors are JSON {code, message} with a ' +
          'stable code. Writes authenticated by the session cookie must send the X-CSRF-Token header.',
      },
      servers: [{ url: this.prefix }],
      components: {
        securitySchemes: {
          bearerToken: { type: 'http', scheme: 'bearer', description: 'an API token (tspb_…), admin role' },
          sessionCookie: { type: 'apiKey', in: 'cookie', name: 'tspb_session' },
        },
        schemas: { Error: errorSchema },
      },
      paths,
    };
  }
}
