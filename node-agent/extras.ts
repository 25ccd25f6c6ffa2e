// Optional parts wired into the agent at start: metrics server, SNAT, hooks, cloud floating IPs.
// Each feature adds itself here, so that main.ts stays small.
import type { Clock } from '../common/clock.js';
import type { Exec } from '../common/exec.js';
import type { Logger } from '../common/log.js';
import type { AgentConfig } from './config.js';
import { NO_METRICS, type AgentMetrics } from './metrics.js';
import type { GroupResource } from './resources.js';

export interface ExtrasDeps {
  config: AgentConfig;
  exec: Exec;
  clock: Clock;
  log: Logger;
}

export interface Extras {
  resources: GroupResource[];
  metrics: AgentMetrics;
  close(): Promise<void>;
}

export async function extraResources(_deps: ExtrasDeps): Promise<Extras> {
  return { resources: [], metrics: NO_METRICS, close: async () => undefined };
}
