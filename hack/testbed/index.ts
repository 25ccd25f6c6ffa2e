// The netns testbed library: one import for tests, demo and benchmark.
export {
  startEtcd,
  freePorts,
  type EtcdCluster,
  type EtcdMember,
  type EtcdClientConfig,
  type StartEtcdOptions,
} from './etcd.js';
export {
  createTestbed,
  listTestbeds,
  type Testbed,
  type TestbedNode,
  type NsRef,
  type CreateTestbedOptions,
  type TestbedSpawnOptions,
} from './testbed.js';
export { startNginx, type NginxHandle, type StartNginxOptions } from './nginx.js';
export {
  startProbe,
  outageAround,
  longestLoss,
  answeredBy,
  runsOf,
  type Probe,
  type ProbeOptions,
  type Sample,
  type Outage,
  type Run,
} from './probe.js';
export {
  startSampler,
  buildSampler,
  computeOverlaps,
  parseSamplerLine,
  AddressTimelines,
  type Sampler,
  type SamplerTarget,
  type StartSamplerOptions,
  type AddrEvent,
  type GateEvent,
  type Interval,
  type Overlaps,
  type OverlapInterval,
} from './sampler.js';
export {
  startArpWatch,
  arpDuals,
  parseArpWatchLine,
  type ArpWatch,
  type ArpAnswers,
  type ArpDual,
  type StartArpWatchOptions,
} from './arpwatch.js';
export { sendGarp, type GarpOptions } from './garp.js';
export { cleanupLeftovers, teardownTestbed, type CleanupReport } from './cleanup.js';
export { installSignalHandlers } from './registry.js';
export type { ProcHandle, ProcExit } from './proc.js';
export { CommandError, monoMs, requireRoot, normalizeIp, sleep } from './util.js';
export { stopEtcdMembers, startEtcdMembers, cutFromEtcd, restoreEtcd, isCutFromEtcd } from './etcd-faults.js';
export { PEER_PORT, peerSection, writePeerKey } from './peer.js';
