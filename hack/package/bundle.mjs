// The esbuild bundles for Node's single executable application (hack/package/sea.sh): one minified CommonJS file
// per command, OUTDIR/agent.cjs, controller.cjs and cli.cjs (the SEA's assets), and OUTDIR/vipwarden.cjs, the
// SEA's main script (hack/package/multicall.cjs), which runs the one the binary was started as. Run after
// `npm run build`: the commands are bin/*.js, the same code that `npm run build` ships.
//
//   node hack/package/bundle.mjs OUTDIR
//
// One bundle per command, not one for all three: V8 keeps a script's whole source in memory and the SEA's code
// cache materializes every function compiled while it was made, so an agent that carried the controller's and the
// CLI's code (the Kubernetes client among them) held ~25 MiB more than it runs (docs/design.md "Footprint").
// Minified: the source V8 keeps, and the bytecode and scope data of what runs, are smaller. keepNames stays on
// (error classes and log lines name constructors).
//
// What a bundle cannot do the way node_modules does, and what this script does about it:
//   - import.meta.url (ESM) does not exist in a CommonJS bundle. The agent finds vw-before and vipwarden-ndsend
//     "next to itself" through it (node-agent/main.ts, node-agent/ndsend.ts). Here it becomes the URL of a file in
//     the helper directory, the first of these that holds vw-before: $VIPWARDEN_LIBEXEC_DIR; the executable's own
//     directory (dist/sea, the image's /usr/lib/vipwarden); <exe dir>/../lib/vipwarden (the .deb's /usr/bin ->
//     /usr/lib/vipwarden); <exe dir>/../node-agent (a bundle in dist/x next to dist/node-agent). The executable is
//     the real path of the binary, so symlinks to it (vipwarden-agent -> vipwarden) do not change the answer.
//   - etcd3 reads its .proto files from node_modules at load time (@grpc/proto-loader loadSync). They are compiled
//     to protobuf.js JSON here and the call becomes proto-loader's fromJSON, with the same options.
//   - pino transports load worker files from disk; common/log.ts writes to pino-pretty as a stream instead.
//   - common/version.ts reads package.json by walking up from itself; there is none beside the binary, so the
//     module becomes the version constant, read from package.json here.
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = resolve(process.argv[2] ?? join(root, 'dist', 'bundle'));
const require = createRequire(join(root, 'package.json'));

const etcdProto = (() => {
  const protobuf = require(require.resolve('protobufjs', { paths: [dirname(require.resolve('@grpc/proto-loader'))] }));
  const rpc = join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto');
  const r = new protobuf.Root();
  r.loadSync(rpc, { keepCase: true });
  return JSON.stringify(r.toJSON());
})();

const etcdProtoPlugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, \{/;
      if (!call.test(src)) throw new Error(`etcd3 changed: no loadSync of rpc.proto in ${args.path}`);
      return { contents: src.replace(call, `(0, proto_loader_1.fromJSON)(${etcdProto}, {`), loader: 'js' };
    });
  },
};

// Optional modules that the code requires inside try/catch and that are not installed: bufferutil and
// utf-8-validate (ws), encoding (node-fetch), cardinal (mysql2). Left external, the SEA's require() would warn at every start; a module
// that throws what a missing module throws keeps each caller on its fallback. (@opentelemetry/api is installed and
// bundled: prom-client requires it unconditionally.)
const OPTIONAL = ['bufferutil', 'utf-8-validate', 'encoding', 'cardinal'];
const optionalPlugin = {
  name: 'optional-missing',
  setup(b) {
    // mysql2 hides its optional require of cardinal from bundlers with a template string.
    b.onLoad({ filter: /mysql2[\\/]lib[\\/]helpers\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const call = 'require(`cardinal${REQUIRE_TERMINATOR}`)';
      if (!src.includes(call)) throw new Error(`mysql2 changed: no optional require of cardinal in ${args.path}`);
      return { contents: src.replace(call, 'require("cardinal")'), loader: 'js' };
    });
    b.onResolve({ filter: new RegExp(`^(${OPTIONAL.join('|')})$`) }, (args) => ({
      path: args.path,
      namespace: 'missing',
    }));
    b.onLoad({ filter: /.*/, namespace: 'missing' }, (args) => ({
      contents: `const e = new Error("Cannot find module '${args.path}' (not bundled)"); e.code = 'MODULE_NOT_FOUND'; throw e;`,
      loader: 'js',
    }));
  },
};

const versionPlugin = {
  name: 'version',
  setup(b) {
    const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
    b.onLoad({ filter: /[\\/]common[\\/]version\.js$/ }, () => ({
      contents: `export const VERSION = ${JSON.stringify(version)};`,
      loader: 'js',
    }));
  },
};

const banner = `"use strict";
var __vw_import_meta_url = (() => {
  const path = require("node:path"), url = require("node:url"), fs = require("node:fs");
  // In a single executable, __filename is process.execPath (the binary); run with node, the bundle's own path.
  let self = __filename;
  try { self = fs.realpathSync(self); } catch {}
  const dir = path.dirname(self);
  const dirs = [process.env.VIPWARDEN_LIBEXEC_DIR, dir, path.join(dir, "..", "lib", "vipwarden"), path.join(dir, "..", "node-agent")];
  const found = dirs.find((d) => d && fs.existsSync(path.join(d, "vw-before"))) ?? dir;
  return url.pathToFileURL(path.join(found, "main.js")).href;
})();`;

mkdirSync(out, { recursive: true });
const started = Date.now();
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  keepNames: true,
  sourcemap: false,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
};
const results = [
  await build({
    ...common,
    entryPoints: [
      { in: 'bin/vipwarden-agent.js', out: 'agent' },
      { in: 'bin/vipwarden-controller.js', out: 'controller' },
      { in: 'bin/vipwarden.js', out: 'cli' },
    ],
    outdir: out,
    outExtension: { '.js': '.cjs' },
    define: { 'import.meta.url': '__vw_import_meta_url' },
    banner: { js: banner },
    plugins: [etcdProtoPlugin, optionalPlugin, versionPlugin],
  }),
  // The dispatcher: built-in modules only.
  await build({ ...common, entryPoints: ['hack/package/multicall.cjs'], outfile: join(out, 'vipwarden.cjs') }),
];
for (const w of results.flatMap((r) => r.warnings)) console.error(`bundle: warning: ${w.text}`);
const sizes = results
  .flatMap((r) => Object.entries(r.metafile.outputs))
  .map(([f, o]) => `${f.split('/').pop()} ${(o.bytes / 1e6).toFixed(2)} MB`);
console.error(`bundle: ${sizes.join(', ')} in ${Date.now() - started} ms`);
