#!/usr/bin/env node
// Entry point for `tspc` when installed as a package: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/tspc.ts');
