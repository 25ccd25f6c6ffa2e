// `fence: auto`: the fast fence where this node can run it, else the address lifetime alone.
// Resolved once at start (node-agent/main.ts), before anything reads the config: afterwards the mode is `nftables`
// or `off`, and the node record says which (the controller's wait after a lease's end depends on it, Safety 3).
// The fence runs when the data-path helper is there (it sets the elements), the default window fits the lease, and
// `nft -f` loads the table (nft installed, nf_tables in the kernel, CAP_NET_ADMIN): the same load the fence does
// before its first element, so a node that passes here can open it.
import type { Exec } from '../../common/exec.js';
import { fenceTimingProblem } from '../../common/fence.js';
import type { Logger } from '../../common/log.js';
import { fenceWindowMs, type AgentConfig } from '../config.js';
import { loadFenceTable } from './nft.js';
import { FENCE_TABLE } from './ruleset.js';

export interface ResolveFenceDeps {
  exec: Exec;
  /** Path of the data-path helper, undefined when there is none. */
  helper: string | undefined;
  log: Logger;
  /** argv[0] of nft (default: nft on PATH). */
  nft?: string;
}

/** Why `auto` cannot run the fence here, or undefined when it can (the table is then loaded). */
async function obstacle(config: AgentConfig, deps: ResolveFenceDeps): Promise<string | undefined> {
  if (!deps.helper) return 'no data-path helper (vipwarden-dataplane) beside the agent';
  const problem = fenceTimingProblem(fenceWindowMs(config), config.lease);
  if (problem) return problem;
  try {
    await loadFenceTable(deps.exec, FENCE_TABLE, deps.nft);
  } catch (err) {
    return `nft could not load the table: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  return undefined;
}

export async function resolveFence(config: AgentConfig, deps: ResolveFenceDeps): Promise<AgentConfig> {
  if (config.fence.mode !== 'auto') return config;
  const why = await obstacle(config, deps);
  if (why) {
    deps.log.warn(
      { reason: why },
      'fence: auto: the fast fence cannot run here, the address lifetime is the only fence (docs/design.md "Fast fence")',
    );
    return { ...config, fence: { ...config.fence, mode: 'off' } };
  }
  deps.log.info({ table: FENCE_TABLE }, 'fence: auto: the fast fence (nftables) gates the VIPs');
  return { ...config, fence: { ...config.fence, mode: 'nftables' } };
}
