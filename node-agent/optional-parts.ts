// Optional parts wired into the agent at start: metrics server, SNAT, hooks, cloud floating IPs.
// Each feature adds itself here, so that main.ts stays small.
import type { Clock } from '../common/clock.js';
import type { Exec } from '../common/exec.js';
import type { Logger } from '../common/log.js';
import { MetricsServer } from '../common/metrics-server.js';
import type { VipRef } from './addresses.js';
import type { AgentConfig } from './config.js';
import { CloudResource } from './cloud/resource.js';
import { HookResource } from './hooks.js';
import { startLvs, type LvsPart } from './lvs/wiring.js';
import { NO_METRICS, type AgentMetrics } from './metrics.js';
import { locateNdsend, naSender } from './ndsend.js';
import { SnatResource } from './snat.js';
import { PromAgentMetrics, vipGroupResource } from './prom-metrics.js';
import type { GroupResource } from './resources.js';
import type { PeerTransport } from './peer/transport.js';

export interface OptionalPartsDeps {
  config: AgentConfig;
  exec: Exec;
  clock: Clock;
  log: Logger;
}

export interface OptionalParts {
  resources: GroupResource[];
  metrics: AgentMetrics;
  /** CommandAnnouncer's onSent: counts announcement packets. */
  onAnnounced?: (vip: VipRef, packets: number) => void;
  /** CommandAnnouncer's sendNa: unsolicited neighbour advertisements for IPv6 VIPs (undefined: none). */
  sendNa?: (vip: VipRef, count: number) => Promise<void>;
  /** The LVS director (node-agent/lvs): the agent hands it the groups that name this node. */
  lvs?: LvsPart['director'];
  /** The failsafe peer channel (agent.yaml `peer:`), or undefined. */
  peer?: PeerTransport;
  /** Binds /readyz to the agent once it exists. */
  setReady?: (ready: () => boolean) => void;
  close(): Promise<void>;
}

export async function optionalParts(deps: OptionalPartsDeps): Promise<OptionalParts> {
  const { config, log } = deps;
  const resources: GroupResource[] = [];
  const closers: (() => Promise<void>)[] = [];
  let metrics: AgentMetrics = NO_METRICS;
  let onAnnounced: OptionalParts['onAnnounced'];
  let setReady: OptionalParts['setReady'];

  // Metrics: /metrics, /healthz, /readyz on metrics.listen (no metrics section: no server).
  if (config.metrics) {
    const prom = new PromAgentMetrics({ node: config.node, leaseTtlSeconds: config.lease.ttlSeconds });
    const server = new MetricsServer({ listen: config.metrics.listen, registry: prom.registry, log });
    await server.start();
    metrics = prom;
    onAnnounced = prom.onAnnounced;
    setReady = (ready) => server.setReady(ready);
    resources.push(vipGroupResource(prom));
    closers.push(() => server.stop());
  }

  // Workloads (issue 4), in acquire order: SNAT, then hooks (services start once traffic leaves from the VIP),
  // then the cloud floating IP (traffic from outside arrives once the services run). Release runs in reverse.
  resources.push(new SnatResource(deps.exec), new HookResource(deps.exec, config));
  const lvs = await startLvs({ ...deps, registry: metrics instanceof PromAgentMetrics ? metrics.registry : undefined });
  resources.push(lvs.resource);
  closers.push(() => lvs.close());
  const cloud = new CloudResource({
    config,
    clock: deps.clock,
    registry: metrics instanceof PromAgentMetrics ? metrics.registry : undefined,
  });
  resources.push(cloud);
  closers.push(() => cloud.close());
  const registry = metrics instanceof PromAgentMetrics ? metrics.registry : undefined;
  const peer = config.peer
    ? await (await import('./peer/start.js')).startPeerChannel({ node: config.node, peer: config.peer, log, registry })
    : undefined;
  if (peer) closers.push(() => peer.close());
  const ndsend = await locateNdsend(deps.exec, config.announce.ndsend, log);
  const sendNa = ndsend ? naSender(deps.exec, ndsend) : undefined;

  return {
    resources,
    metrics,
    sendNa,
    lvs: lvs.director,
    peer,
    onAnnounced,
    setReady,
    close: async () => {
      for (const c of closers.reverse()) await c().catch((err) => log.warn({ err }, 'closing an optional part failed'));
    },
  };
}
