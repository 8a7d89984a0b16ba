#!/usr/bin/env node
/* global process, console */
// Size limits from docs/style.md: no source file in src/ over MAX_FILE_LINES lines and no function over
// MAX_FUNCTION_LINES lines of its own (nested functions count for themselves, so a factory returning an object
// of short methods is as long as its own code), unless a comment starting `size:` says why: in the file's
// first lines for the file, just before the function for a function (a declarative table, a template, a
// schema, where length is the content). Run by `npm run lint`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.ts')) files.push(p);
  }
};
walk(process.argv[2] ?? 'src');

const problems = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const said = /^\s*(\/\/|\*|\/\*\*?)\s*size:/;
  const head = text.split('\n').slice(0, 20);
  const lines = text.split('\n').length;
  if (lines > MAX_FILE_LINES && !head.some((l) => said.test(l)))
    problems.push(`${file}: ${lines} lines (over ${MAX_FILE_LINES})`);
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lineOf = (pos) => src.getLineAndCharacterOfPosition(pos).line;
  const span = (node) => lineOf(node.getEnd()) - lineOf(node.getStart(src)) + 1;
  const isFunction = (node) => ts.isFunctionLike(node) && 'body' in node && node.body !== undefined;
  /** Lines of the nested functions directly inside `node` (not counting theirs twice). */
  const nested = (node) => {
    let n = 0;
    const walkIn = (c) => {
      if (isFunction(c)) n += span(c);
      else ts.forEachChild(c, walkIn);
      return undefined; // forEachChild stops at the first truthy return
    };
    ts.forEachChild(node.body, walkIn);
    return n;
  };
  /** A `size:` comment just before the function, or before the statement that holds it. */
  const excused = (node) => {
    for (let n = node; n && n !== src; n = n.parent) {
      const comments = ts.getLeadingCommentRanges(text, n.getFullStart()) ?? [];
      if (
        comments.some((c) =>
          text
            .slice(c.pos, c.end)
            .split('\n')
            .some((l) => said.test(l)),
        )
      )
        return true;
      if (ts.isStatement(n) || ts.isClassElement(n) || ts.isPropertyAssignment(n)) break;
    }
    return false;
  };
  const visit = (node) => {
    if (isFunction(node)) {
      const own = span(node) - nested(node);
      if (own > MAX_FUNCTION_LINES && !excused(node)) {
        const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
        problems.push(
          `${file}:${lineOf(node.getStart(src)) + 1}: function ${name} is ${own} lines of its own (over ${MAX_FUNCTION_LINES})`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
}
if (problems.length) {
  console.error(`check-size: ${problems.length} over the limits (docs/style.md):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-size: ${files.length} files within ${MAX_FILE_LINES} lines, functions within ${MAX_FUNCTION_LINES}`);
