// Helpers for the packaging tests (test/integration/sea.test.ts, test/e2e/deb.test.ts, ...): they build what they
// test through the repository's own scripts, which cache their output under /var/cache/vipwarden.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../harness/cluster.js';

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
