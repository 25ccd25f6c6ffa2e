#!/usr/bin/env node
// Built entry point: run `npm run build` first.
import { run } from '../dist/cli/main.js';

run(process.argv.slice(2), process.env, { out: (l) => console.log(l), err: (l) => console.error(l) }).then((code) =>
  process.exit(code),
);
