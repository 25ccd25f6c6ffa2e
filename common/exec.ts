// Running commands: argv arrays through execa, never a shell. Failures become CommandError at this boundary; the
// testbed and the test harnesses throw the same class.
import { execa } from 'execa';

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

export const realExec: Exec = async (argv, opts = {}) => {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 10_000,
    input: opts.input,
    env: opts.env,
    extendEnv: true,
    stripFinalNewline: true,
    killSignal: 'SIGKILL',
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const exitCode = r.exitCode ?? -1;
  if (r.timedOut) throw new CommandError(argv, r.exitCode, String(r.stderr ?? ''), true);
  if (exitCode !== 0 && !(opts.okCodes ?? []).includes(exitCode)) {
    throw new CommandError(argv, r.exitCode, String(r.stderr ?? r.message ?? ''));
  }
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode };
};
