#!/usr/bin/env node
// Entry point for `tsp-broker`: the compiled dist/ when current, else the TypeScript through tsx (launch.js).
import { launch } from './launch.js';
await launch('tsp-broker');
