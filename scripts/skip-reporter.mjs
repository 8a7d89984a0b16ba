/* global process */
// node:test reporter used by scripts/run-tests.mjs beside the usual one: writes one JSON line per skipped test
// or suite ({ file, name, reason }), so the runner can list what did not run, and why, after the summary.
import path from 'node:path';

export default async function* skipReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { skip, name, file } = event.data;
    if (skip === undefined || skip === false) continue;
    const reason = typeof skip === 'string' && skip !== '' ? skip : '(no reason given)';
    yield `${JSON.stringify({ file: file ? path.relative(process.cwd(), file) : '', name, reason })}\n`;
  }
}
