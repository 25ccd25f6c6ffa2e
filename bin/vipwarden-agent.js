#!/usr/bin/env node
// Built entry point: run `npm run build` first.
import '../dist/node-agent/main.js';
