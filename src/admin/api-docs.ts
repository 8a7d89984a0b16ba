/** @module admin/api-docs: the interactive API reference at /api/v1/docs, Swagger UI (the swagger-ui-dist
 *  package) rendering /api/v1/openapi.json. Its files are served from node_modules by these routes, read once
 *  on first use and kept in memory: no CDN, and the page keeps the admin server's Content-Security-Policy
 *  (scripts from 'self' only, so the start-up script is a file too).
 *
 *  Public, like the OpenAPI document it renders: the page holds no data, only the description of the API.
 *  "Try it out" sends requests from the browser with whatever credential it has (the session cookie, or a
 *  bearer token entered under Authorize), and they are authorised like any other API request; writes on the
 *  cookie alone lack the X-CSRF-Token header and are refused. The self-service listener does not serve it. */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const FILES = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
} as const;
type DistFile = keyof typeof FILES;

let distDir: string | undefined;
const cache = new Map<DistFile, Buffer>();

function distFile(name: DistFile): Buffer {
  let b = cache.get(name);
  if (!b) {
    distDir ??= path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    b = readFileSync(path.join(distDir, name));
    cache.set(name, b);
  }
  return b;
}

function page(prefix: string): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>API reference · tsp-broker</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
    <link rel="stylesheet" href="${prefix}/docs/swagger-ui.css" />
  </head>
  <body>
    <main id="swagger-ui"></main>
    <script src="${prefix}/docs/swagger-ui-bundle.js"></script>
    <script src="${prefix}/docs/init.js"></script>
  </body>
</html>
`;
}

function init(prefix: string): string {
  return `'use strict';
window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(`${prefix}/openapi.json`)},
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  validatorUrl: null,
});
`;
}

/** GET {prefix}/docs and the files it loads. */
export function registerApiDocs(app: FastifyInstance, prefix: string): void {
  const cached = 'public, max-age=3600';
  app.get(`${prefix}/docs`, async (_req, reply) => reply.type('text/html; charset=utf-8').send(page(prefix)));
  app.get(`${prefix}/docs/init.js`, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', cached).send(init(prefix)),
  );
  for (const name of Object.keys(FILES) as DistFile[])
    app.get(`${prefix}/docs/${name}`, async (_req, reply) =>
      reply.type(FILES[name]).header('cache-control', cached).send(distFile(name)),
    );
}
