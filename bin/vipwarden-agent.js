#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1
// Built entry point: run `npm run build` first. The flags on the first line are node-agent/node-flags.ts's.
import '../dist/node-agent/main.js';
