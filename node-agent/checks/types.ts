// A health check run: one attempt, bounded by its timeout, that says ok or not and why.
import type { Exec } from '../../common/exec.js';
import type { HealthCheckSpec } from '../../crds/failovergroup.js';
import type { AgentConfig } from '../config.js';

export interface CheckOutcome {
  ok: boolean;
  message?: string;
}

export interface CheckDeps {
  exec: Exec;
  config: AgentConfig;
}

export type CheckFn = ((spec: HealthCheckSpec, deps: CheckDeps, signal: AbortSignal) => Promise<CheckOutcome>) & {
  /** Loads what the check needs (a lazily imported driver) ahead of its first run. */
  load?: () => Promise<unknown>;
};
