#!/usr/bin/env node
// Entry point for `tsp-broker` when installed as a package: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/tsp-broker.ts');
