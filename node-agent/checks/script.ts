import { CommandError } from '../../common/exec.js';
import type { CheckFn } from './types.js';

/** A command from the agent's own configuration (never from the FailoverGroup); exit 0 means ok. */
export const scriptCheck: CheckFn = async (spec, deps, signal) => {
  const name = spec.script?.name;
  const cmd = name ? deps.config.commands[name] : undefined;
  if (!name || !cmd) return { ok: false, message: `command "${name}" is not in the agent configuration` };
  try {
    await deps.exec(cmd.argv, { timeoutMs: Math.min(cmd.timeoutMs, spec.timeoutMs) });
    return { ok: !signal.aborted, message: 'exit 0' };
  } catch (e) {
    return { ok: false, message: e instanceof CommandError ? e.message : String(e) };
  }
};
