// Running commands: argv arrays, never a shell. Failures become CommandError at this boundary; the
// testbed and the test harnesses throw the same class.
import { spawn, type ChildProcess } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly timedOut = false,
    /** What it printed, where a caller wants it (kubectl's answer with its error). */
    readonly stdout = '',
  ) {
    super(
      `${argv.join(' ')} ${timedOut ? 'timed out' : `exited ${exitCode ?? '?'}`}${stderr ? `: ${stderr.trim()}` : ''}`,
    );
    this.name = 'CommandError';
  }
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
  /** Exit codes that are not errors (besides 0). */
  okCodes?: number[];
  /** Kills the command when aborted (the call then rejects with a CommandError). */
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The injectable command runner. Tests pass a fake; production uses `realExec`. */
export type Exec = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

/** Strips one final newline (\n or \r\n), as a shell's $(...) does. */
export function stripFinalNewline(s: string): string {
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s;
}

/**
 * Runs argv (no shell) with node:child_process: stdout and stderr collected as text, the final newline stripped,
 * `input` written to stdin (stdin is closed otherwise), the environment extended with `env`. SIGKILL at the
 * timeout (10 s unless told) or when `signal` aborts; both reject with a CommandError, as does an exit code other
 * than 0 and `okCodes`, a death by signal, or a command that cannot be started (its error as the stderr).
 *
 * Not execa, which the agent used here before: execa and what it loads held ~10 MiB of the idle agent's heap for
 * this one call (docs/design.md "Footprint"). The tools and the testbed still use execa.
 */
export const realExec: Exec = (argv, opts = {}) =>
  new Promise<ExecResult>((resolve, reject) => {
    const [file, ...args] = argv;
    if (!file) {
      reject(new Error('empty argv'));
      return;
    }
    if (opts.signal?.aborted) {
      reject(new CommandError(argv, undefined, 'aborted before it started'));
      return;
    }
    const input = opts.input;
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      reject(new CommandError(argv, undefined, err instanceof Error ? err.message : String(err)));
      return;
    }
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => errOut.push(b));
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | undefined;
    const kill = () => {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs ?? 10_000);
    const onAbort = () => {
      aborted = true;
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      // Not started (ENOENT, EACCES): 'close' follows.
      spawnError = err;
    });
    if (input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        // EPIPE: the command exited without reading all of it; its exit status says what happened.
      });
      child.stdin.end(input);
    }
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const stdout = stripFinalNewline(Buffer.concat(out).toString('utf8'));
      const stderr = stripFinalNewline(Buffer.concat(errOut).toString('utf8'));
      if (timedOut) {
        reject(new CommandError(argv, undefined, stderr, true));
        return;
      }
      if (spawnError) {
        reject(new CommandError(argv, undefined, stderr || spawnError.message));
        return;
      }
      if (aborted || code === null) {
        reject(new CommandError(argv, undefined, stderr || (aborted ? 'aborted' : `killed by ${sig ?? 'a signal'}`)));
        return;
      }
      if (code !== 0 && !(opts.okCodes ?? []).includes(code)) {
        reject(new CommandError(argv, code, stderr));
        return;
      }
      resolve({ stdout, stderr, exitCode: code });
    });
  });
