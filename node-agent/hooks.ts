// Resources that move with the address (Heartbeat's haresources): named hooks from the agent's own configuration,
// run on acquire (in the group's order) and on release (in reverse order). A FailoverGroup only names them.
// Each hook gets VIPWARDEN_* environment variables and has a timeout. A failing acquire hook fails the acquire, so
// that the agent releases the group and another node serves it; release hooks all run, and must be safe to repeat
// (a release may follow an acquire that stopped half-way, or none at all).
import { CommandError, type Exec } from '../common/exec.js';
import type { Logger } from '../common/log.js';
import type { AgentConfig } from './config.js';
import type { GroupResource, ResourceContext } from './resources.js';

export type HookPhase = 'acquire' | 'release';

export class HookError extends Error {
  constructor(
    readonly hook: string,
    readonly phase: HookPhase,
    readonly why: string,
  ) {
    super(`${phase} hook "${hook}" ${why}`);
    this.name = 'HookError';
  }
}

/** The environment a hook runs with (pure). */
export function hookEnv(
  ctx: Pick<ResourceContext, 'group' | 'node' | 'epoch' | 'vips'>,
  phase: HookPhase,
): Record<string, string> {
  return {
    VIPWARDEN_EVENT: phase,
    VIPWARDEN_GROUP: ctx.group,
    VIPWARDEN_NODE: ctx.node,
    VIPWARDEN_EPOCH: String(ctx.epoch),
    /** Space-separated, with prefix lengths: "198.18.0.100/24 2001:2::100/64". */
    VIPWARDEN_VIPS: ctx.vips.map((v) => `${v.address}/${v.prefix}`).join(' '),
    /** The same addresses without prefix lengths. */
    VIPWARDEN_ADDRESSES: ctx.vips.map((v) => v.address).join(' '),
    VIPWARDEN_INTERFACES: [...new Set(ctx.vips.map((v) => v.iface))].join(' '),
  };
}

/** What one hook phase runs: the argv, or nothing when the hook has no such phase. */
export function hookCommand(
  config: Pick<AgentConfig, 'hooks'>,
  name: string,
  phase: HookPhase,
): { argv: string[]; timeoutMs: number } | null | undefined {
  const h = config.hooks[name];
  if (!h) return undefined;
  const argv = h[phase];
  return argv ? { argv, timeoutMs: h.timeoutMs } : null;
}

export class HookResource implements GroupResource {
  readonly name = 'hooks';
  /** Hooks whose acquire was started, per group: release runs these even when the spec changed or is gone. */
  private readonly started = new Map<string, string[]>();

  constructor(
    private readonly exec: Exec,
    private readonly config: Pick<AgentConfig, 'hooks'>,
  ) {}

  async acquire(ctx: ResourceContext): Promise<void> {
    const names = ctx.spec?.hooks ?? [];
    // Refuse before starting anything when a named hook is not configured on this node.
    const missing = names.filter((n) => hookCommand(this.config, n, 'acquire') === undefined);
    if (missing.length > 0) throw new HookError(missing[0]!, 'acquire', 'is not in the agent configuration');
    const started: string[] = [];
    this.started.set(ctx.group, started);
    for (const name of names) {
      if (!ctx.isCurrent() || ctx.signal.aborted) {
        ctx.log.info({ hook: name }, 'assignment moved on: not running the remaining acquire hooks');
        return;
      }
      started.push(name);
      await this.run(ctx, name, 'acquire');
    }
  }

  async release(ctx: ResourceContext): Promise<void> {
    const names = [...(this.started.get(ctx.group) ?? ctx.spec?.hooks ?? [])].reverse();
    this.started.delete(ctx.group);
    const failures: HookError[] = [];
    for (const name of names) {
      try {
        await this.run(ctx, name, 'release');
      } catch (err) {
        failures.push(err instanceof HookError ? err : new HookError(name, 'release', String(err)));
      }
    }
    if (failures.length > 0) throw new Error(failures.map((f) => f.message).join('; '));
  }

  private async run(ctx: ResourceContext, name: string, phase: HookPhase): Promise<void> {
    const cmd = hookCommand(this.config, name, phase);
    if (cmd === undefined) throw new HookError(name, phase, 'is not in the agent configuration');
    if (cmd === null) return;
    const log: Logger = ctx.log.child({ hook: name, phase });
    const t0 = performance.now();
    try {
      // An acquire hook is killed when the group is let go of (release, lost lease); a release hook always runs to
      // its end (or its timeout), since the release is acknowledged only after it.
      const r = await this.exec(cmd.argv, {
        timeoutMs: cmd.timeoutMs,
        env: hookEnv(ctx, phase),
        ...(phase === 'acquire' ? { signal: ctx.signal } : {}),
      });
      log.info(
        { argv: cmd.argv, tookMs: Math.round(performance.now() - t0), ...(r.stdout ? { stdout: tail(r.stdout) } : {}) },
        'hook ran',
      );
    } catch (err) {
      const why =
        phase === 'acquire' && ctx.signal.aborted
          ? 'killed: the group was let go of'
          : err instanceof CommandError
            ? err.timedOut
              ? `timed out after ${cmd.timeoutMs} ms`
              : `exited ${err.exitCode ?? '?'}${err.stderr.trim() ? `: ${tail(err.stderr)}` : ''}`
            : `could not run: ${String(err)}`;
      log.warn({ argv: cmd.argv, why }, 'hook failed');
      throw new HookError(name, phase, why);
    }
  }
}

function tail(s: string): string {
  const t = s.trim();
  return t.length > 500 ? `…${t.slice(-500)}` : t;
}
