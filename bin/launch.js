/* global process, URL */
// Shared start-up of bin/tsp-broker.js and bin/tspc.js. An installed package (npm pack, npm install -g) has
// dist/ (compiled at pack time) and no src/: it runs dist/ directly. A development checkout runs dist/ only
// while it is up to date, i.e. its stamp (written when scripts/build-dist.mjs started) is newer than every
// file under src/; otherwise (never built, build failed, a source edited since) it runs src/ through tsx, as
// `npm start` and `npm test` do, so an edit is never shadowed by stale JavaScript. TSP_FROM_SOURCE=1 forces
// tsx. Checking costs one stat per source file (about a millisecond).
import { readdirSync, statSync } from 'node:fs';

/** Newest modification time (ms) of any file under `dir`, or -1 when it does not exist. */
function newestUnder(dir) {
  let newest = -1;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return -1;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    newest = Math.max(newest, e.isDirectory() ? newestUnder(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function distIsCurrent(root) {
  let stamp;
  try {
    stamp = statSync(new URL('dist/.build-stamp', root)).mtimeMs;
  } catch {
    return false;
  }
  return newestUnder(new URL('src', root).pathname) <= stamp;
}

/** Runs the command line program `name` (dist/cli/NAME.js, else src/cli/NAME.ts through tsx). */
export async function launch(name) {
  const root = new URL('../', import.meta.url);
  if (process.env.TSP_FROM_SOURCE !== '1' && distIsCurrent(root)) {
    process.setSourceMapsEnabled(true);
    await import(new URL(`dist/cli/${name}.js`, root).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`src/cli/${name}.ts`, root).href);
}
