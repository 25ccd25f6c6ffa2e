#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072 node --max-semi-space-size=1 --v8-pool-size=1
// Built entry point: run `npm run build` first. The settings on the first line are node-agent/node-flags.ts's.
import '../dist/node-agent/main.js';
