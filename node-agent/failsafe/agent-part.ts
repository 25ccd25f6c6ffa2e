// Builds the agent's failsafe part from the agent's own parts (agent.ts calls this; nothing here when agent.yaml has
// no `peer:`). Timing: DEFAULT_FAILSAFE_TIMING with the agent's lease margin, and W and maxKeep from `peer:`.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../common/clock.js';
import type { Keys, NodeFailsafe } from '../../common/keyspace.js';
import type { LeaseKeeper } from '../../common/lease.js';
import type { AgentConfig } from '../config.js';
import type { Logger } from '../../common/log.js';
import type { ClusterView } from '../cluster-view.js';
import type { Holdings } from '../holdings.js';
import type { AgentMetrics } from '../metrics.js';
import { PeerDirectory } from './directory.js';
import { failsafeTiming } from './rules.js';
import type { PeerTransport } from './transport.js';
import { AgentFailsafe } from './wiring.js';

export interface AgentFailsafeParts {
  config: Pick<AgentConfig, 'node' | 'lease' | 'peer'>;
  client: Etcd3;
  clock: Clock;
  log: Logger;
  metrics?: AgentMetrics;
  agent: { keys: Keys; lease: LeaseKeeper; holdingsOwner: Holdings; kick(): void };
  view: ClusterView;
  registration: { setFailsafe(info: NodeFailsafe, lease: string | undefined): Promise<void> };
}

/** The failsafe part, or undefined without a peer channel. Its start(signal) begins serving peers and keeping. */
export function agentFailsafe(
  peer: PeerTransport | undefined,
  p: AgentFailsafeParts,
): (AgentFailsafe & { startAll(signal: AbortSignal): void }) | undefined {
  if (!peer) return undefined;
  const { agent, log } = p;
  const directory = new PeerDirectory(p.client, agent.keys, log);
  const part = new AgentFailsafe({
    node: p.config.node,
    clock: p.clock,
    log,
    lease: agent.lease,
    timing: failsafeTiming(p.config.lease, p.config.peer),
    transport: peer,
    holdings: agent.holdingsOwner,
    view: p.view,
    peerAddress: (n) => directory.address(n),
    publish: (info) => p.registration.setFailsafe(info, agent.lease.lease),
    metrics: p.metrics,
    kick: (afterMs) => (afterMs ? void setTimeout(() => agent.kick(), afterMs).unref() : agent.kick()),
  });
  // In the node record from the first registration: the controller knows W and maxKeep before any keep.
  void p.registration.setFailsafe(part.info(), undefined);
  return Object.assign(part, {
    startAll(signal: AbortSignal) {
      directory.start(signal);
      part.start(signal);
    },
  });
}
