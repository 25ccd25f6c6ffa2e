// What moves with the addresses besides the addresses themselves: announcements, SNAT rules, hooks, cloud IPs.
// Each is a GroupResource; the agent runs acquire() after adding the addresses and release() after removing them.
import type { Logger } from '../common/log.js';
import type { Spec } from '../crds/failovergroup.js';
import type { VipRef } from './addresses.js';

export interface ResourceContext {
  group: string;
  node: string;
  epoch: number;
  vips: readonly VipRef[];
  /** The group's spec as the leader published it; absent when the group is being deleted. */
  spec: Spec | undefined;
  /** False once the assignment has moved on: long-running work (cloud calls, repeats) must stop. */
  isCurrent(): boolean;
  /**
   * Resolves true once a keepalive answer, sent at most renewWindowMs ago, shows the lease this holding was taken
   * under alive. What the agent believes can be stale (it was frozen, etcd moved on): a call that changes something
   * outside this machine later in a holding (a cloud re-assert) asks this first. Absent in tests: true.
   */
  confirmLease?(): Promise<boolean>;
  signal: AbortSignal;
  log: Logger;
}

export interface GroupResource {
  readonly name: string;
  /** Runs after the addresses are added. Throwing makes the agent release the group (AcquireError). */
  acquire(ctx: ResourceContext): Promise<void>;
  /** Runs after the addresses are removed; must be safe to repeat and must not throw for "already gone". */
  release(ctx: ResourceContext): Promise<void>;
  /** At start: remove whatever this resource left behind for groups not in `keep`. */
  cleanupStale?(keep: ReadonlySet<string>, log: Logger): Promise<void>;
}

/** A resource failed to come up: the group is released so that another node can serve. */
export class AcquireError extends Error {
  constructor(
    readonly resource: string,
    readonly group: string,
    cause: unknown,
  ) {
    super(`${resource} failed for group ${group}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'AcquireError';
  }
}
