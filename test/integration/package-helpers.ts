// Helpers for the packaging tests (test/integration/sea.test.ts, test/e2e/deb.test.ts, ...): they build what they
// test through the repository's own scripts, which cache their output under /var/cache/vipwarden.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../../hack/testbed/cluster.js';

const execFileP = promisify(execFile);

/** Runs a hack/ script (nice'd: the machine is shared) and returns the KEY=VALUE lines of its stdout. */
export async function runScript(
  script: string,
  args: string[] = [],
  timeoutMs = 20 * 60_000,
): Promise<Record<string, string>> {
  const { stdout } = await execFileP('nice', ['-n', '10', 'bash', join(REPO, script), ...args], {
    cwd: REPO,
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`${script} failed: ${err.message}\n${String(err.stderr ?? '').slice(-4000)}`);
  });
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** hack/package/sea.sh: the single executables in dist/sea (cached build). */
export async function buildSea(): Promise<string> {
  const { SEA_DIR } = await runScript('hack/package/sea.sh');
  if (!SEA_DIR) throw new Error('hack/package/sea.sh printed no SEA_DIR');
  return SEA_DIR;
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs a command to its end, with a timeout. */
export function run(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        if (e && typeof e.code !== 'number' && e.code !== undefined && !e.signal) return reject(e);
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          out: stdout,
          err: stderr,
        });
      },
    );
  });
}

/** A long-running process whose output is collected. */
export interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(argv: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => (buf += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (buf += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  return { child, output: () => buf, exited };
}

/** Polls until fn returns a truthy value; throws with the last error after timeoutMs. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** hack/image/build.sh: the OCI image (cached build). */
export async function buildImage(): Promise<{ image: string; archive: string; layout: string }> {
  const r = await runScript('hack/image/build.sh');
  if (!r.IMAGE || !r.IMAGE_ARCHIVE || !r.IMAGE_LAYOUT) throw new Error('hack/image/build.sh printed no IMAGE');
  return { image: r.IMAGE, archive: r.IMAGE_ARCHIVE, layout: r.IMAGE_LAYOUT };
}

/** How a container of the image runs: what a pod's securityContext and volumes would say. */
export interface RuncSpec {
  args: string[];
  uid: number;
  gid: number;
  /** Linux capability names (CAP_...): the bounding, effective, permitted (and, for uid 0, nothing else) sets. */
  caps: string[];
  /** A network namespace to join (/run/netns/NAME); absent: the host's (hostNetwork). */
  netns?: string;
  /** Bind mounts: host path -> container path. */
  mounts?: { source: string; destination: string; readonly?: boolean }[];
  env?: string[];
}

/**
 * An OCI runtime bundle of the image (umoci unpack, which writes config.json from the image config), adjusted
 * the way the kubelet's CRI would for the pod spec: read-only root, no privilege escalation, the given user,
 * capabilities, network namespace and mounts.
 */
export async function runcBundle(layout: string, tag: string, dir: string, spec: RuncSpec): Promise<string> {
  const { mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const bundle = join(dir, 'bundle');
  const u = await run(['umoci', 'unpack', '--image', `${layout}:${tag}`, bundle], { timeoutMs: 300_000 });
  if (u.code !== 0) throw new Error(`umoci unpack failed: ${u.err}`);
  const cfgPath = join(bundle, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as {
    root: { readonly: boolean };
    process: Record<string, unknown> & { env?: string[] };
    linux: { namespaces: { type: string; path?: string }[] };
    mounts: { destination: string; type: string; source: string; options: string[] }[];
  };
  cfg.root.readonly = true;
  cfg.process.terminal = false;
  cfg.process.args = spec.args;
  cfg.process.user = { uid: spec.uid, gid: spec.gid };
  cfg.process.noNewPrivileges = true;
  cfg.process.capabilities = {
    bounding: spec.caps,
    effective: spec.caps,
    permitted: spec.caps,
    inheritable: [],
    ambient: [],
  };
  if (spec.env) cfg.process.env = [...(cfg.process.env ?? []), ...spec.env];
  cfg.linux.namespaces = cfg.linux.namespaces.filter((n) => n.type !== 'network');
  if (spec.netns) cfg.linux.namespaces.push({ type: 'network', path: `/run/netns/${spec.netns}` });
  for (const m of spec.mounts ?? []) {
    mkdirSync(m.source, { recursive: true });
    cfg.mounts.push({
      destination: m.destination,
      type: 'bind',
      source: m.source,
      options: ['rbind', m.readonly ? 'ro' : 'rw'],
    });
  }
  // /run is a tmpfs in a pod (the kubelet mounts none, but the image's /run must be writable under a read-only root
  // only where volumes say so): the state directory comes from the mounts.
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  return bundle;
}
