#!/usr/bin/env node
// Entry point for `tspc`: the compiled dist/ when current, else the TypeScript through tsx (launch.js).
import { launch } from './launch.js';
await launch('tspc');
