// realExec: the agent's one way to run a command (ip, nft, arping, hooks, check scripts).
import { describe, expect, test } from '@jest/globals';
import { CommandError, realExec, stripFinalNewline } from './exec.js';

const sh = (script: string) => ['/bin/sh', '-c', script];

describe('realExec', () => {
  test('collects stdout and stderr with one final newline stripped', async () => {
    const r = await realExec(sh('printf "a\\nb\\n\\n"; printf "warn\\n" >&2'));
    expect(r).toEqual({ stdout: 'a\nb\n', stderr: 'warn', exitCode: 0 });
    expect(stripFinalNewline('x\r\n')).toBe('x');
    expect(stripFinalNewline('x')).toBe('x');
  });

  test('writes input to stdin and closes it; without input stdin is closed', async () => {
    expect((await realExec(['cat'], { input: 'hello\n' })).stdout).toBe('hello');
    // cat on a closed stdin ends at once instead of waiting for a terminal.
    expect((await realExec(['cat'], { timeoutMs: 5000 })).stdout).toBe('');
  });

  test('extends the environment with env', async () => {
    const r = await realExec(sh('echo "$VW_EXEC_TEST $PATH"'), { env: { VW_EXEC_TEST: 'yes' } });
    expect(r.stdout.startsWith('yes /')).toBe(true);
  });

  test('an exit code other than 0 rejects with the code and stderr, unless it is in okCodes', async () => {
    const err = await realExec(sh('echo nope >&2; exit 3')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).exitCode).toBe(3);
    expect((err as CommandError).stderr).toBe('nope');
    expect((err as CommandError).message).toContain('exited 3: nope');
    expect((await realExec(sh('exit 1'), { okCodes: [1] })).exitCode).toBe(1);
  });

  test('kills the command at the timeout and says it timed out', async () => {
    const t0 = Date.now();
    const err = await realExec(['sleep', '30'], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).timedOut).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000); // only catches a hang
  });

  test('an abort kills the command and rejects; an aborted signal does not start it', async () => {
    const ac = new AbortController();
    const p = realExec(['sleep', '30'], { signal: ac.signal }).catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 100);
    const err = await p;
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).timedOut).toBe(false);
    await expect(realExec(['true'], { signal: ac.signal })).rejects.toBeInstanceOf(CommandError);
  });

  test('a command that cannot start rejects with the reason', async () => {
    const err = await realExec(['/nonexistent/vw-no-such-command']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).stderr).toMatch(/ENOENT/);
  });

  test('a death by signal rejects', async () => {
    const err = await realExec(sh('kill -TERM $$')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).stderr).toContain('SIGTERM');
  });
});
