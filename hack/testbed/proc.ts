// Long-running child processes with logs in files, a bounded stop, and a crash-time kill.
import { execa, type ResultPromise } from 'execa';
import type { Readable } from 'node:stream';
import { inNetns, withTimeout } from './util.js';
import { onExitCleanup } from './registry.js';

export interface ProcExit {
  exitCode: number | undefined;
  signal: string | undefined;
}

export interface ProcHandle {
  readonly name: string;
  readonly pid: number;
  /** Namespace it runs in; null for the root namespace. */
  readonly netns: string | null;
  readonly stdoutLog: string | null;
  readonly stderrLog: string;
  /** Only when spawned with `stdout: 'pipe'`. */
  readonly stdout: Readable | null;
  readonly exited: boolean;
  /** Resolves when the process has ended (never rejects). */
  readonly done: Promise<ProcExit>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM (or `signal`), wait up to timeoutMs, then SIGKILL; resolves when it is gone. */
  stop(opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ProcExit>;
}

export interface SpawnLoggedOptions {
  name: string;
  netns?: string | null;
  /** 'pipe' gives a readable `stdout`; otherwise stdout goes to `stdoutLog`. */
  stdout?: 'file' | 'pipe';
  stdoutLog?: string;
  stderrLog: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the child when this process dies, however it dies (default true). */
  dieWithParent?: boolean;
  /**
   * The child leads its own process group, and signals go to the whole group (a server that forks workers); it
   * does not keep this process alive.
   */
  processGroup?: boolean;
}

export function spawnLogged(argv: readonly string[], opts: SpawnLoggedOptions): ProcHandle {
  // setpriv --pdeathsig: the child dies with this process even when it is SIGKILLed (no exit handler runs then).
  const guarded = opts.dieWithParent === false ? [...argv] : ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...argv];
  const full = inNetns(opts.netns ?? null, guarded);
  const [file, ...args] = full;
  if (!file) throw new Error('spawnLogged: empty argv');
  const pipe = opts.stdout === 'pipe';
  if (!pipe && !opts.stdoutLog) throw new Error('spawnLogged: stdoutLog is required unless stdout is piped');
  const sub: ResultPromise = execa(file, args, {
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: pipe ? 'pipe' : { file: opts.stdoutLog as string, append: true },
    stderr: { file: opts.stderrLog, append: true },
    forceKillAfterDelay: false,
    cleanup: !opts.processGroup,
    detached: opts.processGroup === true,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const pid = sub.pid;
  if (pid === undefined) throw new Error(`failed to spawn ${full.join(' ')}`);
  if (opts.processGroup) sub.unref();
  const target = opts.processGroup ? -pid : pid;
  let exited = false;
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(target, sig);
    } catch {
      // already gone
    }
  };
  const unregister = onExitCleanup(`process ${opts.name} (${opts.processGroup ? 'group ' : ''}${pid})`, () => {
    if (!exited || opts.processGroup) signal('SIGKILL');
  });
  const done: Promise<ProcExit> = sub.then(
    (r) => {
      exited = true;
      if (!opts.processGroup) unregister();
      return { exitCode: r.exitCode, signal: r.signal };
    },
    (e: unknown) => {
      exited = true;
      if (!opts.processGroup) unregister();
      const err = e as { exitCode?: number; signal?: string };
      return { exitCode: err.exitCode, signal: err.signal };
    },
  );
  const kill = (sig: NodeJS.Signals = 'SIGTERM'): void => {
    if (!exited) signal(sig);
  };
  return {
    name: opts.name,
    pid,
    netns: opts.netns ?? null,
    stdoutLog: pipe ? null : (opts.stdoutLog ?? null),
    stderrLog: opts.stderrLog,
    stdout: pipe ? (sub.stdout ?? null) : null,
    get exited() {
      return exited;
    },
    done,
    kill,
    async stop(o = {}) {
      if (!exited) {
        kill(o.signal ?? 'SIGTERM');
        const timeout = o.timeoutMs ?? 3000;
        const t = await withTimeout(
          done.then(() => 'done' as const),
          timeout,
          'timeout' as const,
        );
        if (t === 'timeout') kill('SIGKILL');
      }
      const exit = await done;
      if (opts.processGroup) {
        signal('SIGKILL'); // anything left in the group
        unregister();
      }
      return exit;
    },
  };
}

/** Stops a process whose stdout is read line by line, then waits (up to 500 ms) for the last lines to be read. */
export async function stopAndDrain(
  proc: ProcHandle,
  lines: { once(event: 'close', fn: () => void): unknown },
  timeoutMs: number,
): Promise<void> {
  await proc.stop({ signal: 'SIGTERM', timeoutMs });
  const stdout = proc.stdout;
  await withTimeout(
    new Promise<void>((r) => {
      if (!stdout || stdout.readableEnded) r();
      else lines.once('close', () => r());
    }),
    500,
    undefined,
  );
}
