// What the controller reports. The Prometheus implementation lives with the metrics server.
import type { TransitionReason } from '../common/keyspace.js';
export interface ControllerMetrics {
  leader(is: boolean): void;
  transition(group: string, reason: TransitionReason): void;
  holder(group: string, node: string | null, nodes: readonly string[]): void;
  reconcile(durationMs: number, outcome: 'ok' | 'requeue' | 'conflict' | 'error'): void;
  etcdUp(up: boolean): void;
  /** vipwarden_etcd_up follows check() from now on (read at each scrape). */
  bindEtcdUp?(check: () => boolean): void;
  groups(valid: number, rejected: number): void;
  /** The leader revoked a silent holder's lease (heartbeats, controller/heartbeats.ts). */
  revoked?(node: string): void;
  /** The leader compacted etcd's history to `revision` (controller/compactor.ts). */
  compacted?(revision: number): void;
}

export const NO_CONTROLLER_METRICS: ControllerMetrics = {
  leader: () => undefined,
  transition: () => undefined,
  holder: () => undefined,
  reconcile: () => undefined,
  etcdUp: () => undefined,
  groups: () => undefined,
};
