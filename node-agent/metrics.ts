// What the agent reports. The Prometheus implementation lives with the metrics server; tests use NO_METRICS.
export interface AgentMetrics {
  holder(group: string, held: boolean): void;
  transition(group: string, kind: 'acquire' | 'release', reason: string): void;
  /** From the failure's detection (assignment.detectedAt) to the address being added here, seconds. */
  failoverOutage(group: string, seconds: number): void;
  checkResult(group: string, check: string, ok: boolean, latencyMs: number): void;
  keepaliveRtt(ms: number): void;
  reconcile(durationMs: number, outcome: 'ok' | 'error'): void;
  etcdUp(up: boolean): void;
  /** vipwarden_etcd_up follows check() from now on (read at each scrape). */
  bindEtcdUp?(check: () => boolean): void;
  announced(group: string, family: 4 | 6, packets: number): void;
  /** Failsafe (node-agent/failsafe/): the group is kept by promises now (vipwarden_failsafe_active). */
  failsafeActive?(group: string, active: boolean): void;
  /** Failsafe: a promise this node gave (to a holder) or received (as holder), granted or refused. */
  promise?(side: 'given' | 'received', granted: boolean): void;
}

export const NO_METRICS: AgentMetrics = {
  holder: () => undefined,
  transition: () => undefined,
  failoverOutage: () => undefined,
  checkResult: () => undefined,
  keepaliveRtt: () => undefined,
  reconcile: () => undefined,
  etcdUp: () => undefined,
  announced: () => undefined,
};
