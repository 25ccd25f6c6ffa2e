// Main script of the single executable (hack/package/sea.sh): one binary, three commands, chosen by the name it was
// started under (busybox-style): vipwarden-agent and vipwarden-controller are symlinks to vipwarden. Each command is
// its own bundle (hack/package/bundle.mjs), stored in the binary as a SEA asset; only the chosen one is read and
// compiled, so an agent holds none of the controller's or the CLI's code. Outside a single executable (node
// OUTDIR/vipwarden.cjs, for a look at a bundle), the bundles are read from the directory of this file.
'use strict';
const { basename, dirname, join } = require('node:path');
const { compileFunction } = require('node:vm');

const name = basename(process.argv0 || process.argv[0] || 'vipwarden').replace(/\.(exe|bin)$/, '');
const command = name.endsWith('-agent') ? 'agent' : name.endsWith('-controller') ? 'controller' : 'cli';

function source(file) {
  let sea;
  try {
    sea = require('node:sea');
  } catch {
    sea = undefined; // node:sea exists from Node.js 20.12 on
  }
  if (sea && sea.isSea()) return sea.getAsset(file, 'utf8');
  return require('node:fs').readFileSync(join(__dirname, file), 'utf8');
}

try {
  const file = `${command}.cjs`;
  const mod = { exports: {} };
  // The bundle's own module scope, as CommonJS gives it one. __filename is this script's: in a single executable,
  // the binary (the bundle looks for its native helpers next to it).
  const fn = compileFunction(source(file), ['exports', 'require', 'module', '__filename', '__dirname'], {
    filename: join(dirname(__filename), file),
  });
  fn.call(mod.exports, mod.exports, require, mod, __filename, __dirname);
} catch (err) {
  console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
