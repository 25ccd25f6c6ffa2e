// Shared vocabulary of the failover benchmark: fault modes, profiles, and what one iteration records.
import type { EtcdCluster, Testbed } from '../testbed/index.js';

export const MODES = ['service', 'graceful', 'link', 'kill', 'freeze'] as const;
export type Mode = (typeof MODES)[number];

export const MODE_TITLES: Record<Mode, string> = {
  service: 'service stops (nginx killed on the holder)',
  graceful: "planned move / graceful stop (SIGTERM of the holder's daemon)",
  link: "the holder's link cut",
  kill: "the holder's daemon killed (SIGKILL)",
  freeze: "the holder's daemon frozen (SIGSTOP)",
};

export const PROFILES = ['vipwarden-default', 'vipwarden-fast', 'keepalived-default', 'keepalived-tuned'] as const;
export type Profile = (typeof PROFILES)[number];

export type Product = 'vipwarden' | 'keepalived';

export function productOf(p: Profile): Product {
  return p.startsWith('vipwarden') ? 'vipwarden' : 'keepalived';
}

/**
 * One product running on a netns testbed, with the primitives the fault modes are made of.
 * Every primitive is bounded in time and safe to repeat.
 */
export interface Subject {
  readonly product: Product;
  readonly profile: Profile;
  readonly tb: Testbed;
  /** vipwarden's etcd cluster (the arbiter fault modes, arbiter.ts); keepalived has none. */
  readonly etcd?: EtcdCluster;
  /** The VIP (no prefix). */
  readonly vip: string;
  /** The node that holds the VIP when everything is healthy. */
  readonly preferred: string;
  /** Profile parameters, for the JSON output and the docs. */
  readonly settings: Record<string, unknown>;
  /** The fast fence's nftables table when the nodes run it (the sampler then reads its gates). */
  readonly fenceTable?: string;
  killService(node: string): Promise<void>;
  startService(node: string): Promise<void>;
  serviceRunning(node: string): boolean;
  /** Sends the signal to the daemon (the whole process group where the daemon has children); does not wait. */
  signalDaemon(node: string, signal: 'SIGTERM' | 'SIGKILL' | 'SIGSTOP' | 'SIGCONT'): void;
  /** Waits until the node's daemon is gone (after SIGTERM/SIGKILL), SIGKILLing it after timeoutMs. */
  waitDaemonGone(node: string, timeoutMs: number): Promise<void>;
  daemonRunning(node: string): boolean;
  /** Pid of the node's daemon (the root of its process tree), for the footprint; undefined when not running. */
  daemonPid?(node: string): number | undefined;
  startDaemon(node: string): Promise<void>;
  /** Step timestamps of a failover from the components' own logs, where the product logs them. */
  explain?(w: ExplainWindow): Promise<LogTimes>;
  destroy(): Promise<void>;
}

export interface ExplainWindow {
  mode: Mode;
  /** The faulted node and the node that took over (if any). */
  from: string;
  to: string | undefined;
  /** CLOCK_MONOTONIC ms: fault injection and end of the observation. */
  tFault: number;
  tEnd: number;
  /** Date.now() - monoMs(), measured at the fault: turns log wall-clock times into monotonic ones. */
  wallMinusMono: number;
}

/** The steps the components log: monotonic ms in LogTimes, ms after the fault in StepOffsets. */
export interface LoggedSteps {
  /** Failure noticed: check turned failing (service), SIGTERM received (graceful), lease end seen (hard). */
  detect?: number;
  /** The old holder removed the VIP and said so ("released" log). */
  released?: number;
  /** The controller saw the old holder's lease end. */
  leaseEnded?: number;
  /** The controller wrote the assignment naming the new holder. */
  assigned?: number;
  /** The new holder's agent started its acquire step (assignment delivered by the watch, pass planned). */
  acquireStart?: number;
  /** The new holder's agent logged "acquired" (address added). */
  acquired?: number;
}

/** Monotonic ms (same clock as probe and sampler) of the steps the components log. */
export interface LogTimes extends LoggedSteps {
  /** Figures the controller put in its "failover" event. */
  eventDetectMs?: number;
  eventOutageMs?: number;
  eventReason?: string;
}

export interface IterationResult {
  profile: Profile;
  mode: Mode;
  iteration: number;
  /** Client-visible outage: last answer before the fault to the first answer after it (ms); null: no answer came. */
  outageMs: number | null;
  failedAttempts: number;
  /**
   * Time the VIP sat on two or more nodes at once, from the fault to the end of the observation (ms): the union of
   * the sampler's view (two nodes held the address) and the outside view (two nodes answered one ARP request).
   */
  dualMs: number;
  /** The overlap was still going on when the observation ended (so dualMs is a lower bound). */
  dualOngoing: boolean;
  /** Dual-holder time while the initial state was restored after the fault (failback, restart). */
  recoveryDualMs: number;
  /** The outside view's part: two nodes answered one ARP request for the VIP (after the fault; in the recovery). */
  arpDualMs?: number;
  arpRecoveryDualMs?: number;
  /** Each overlap (ms after the fault) with the nodes that held the VIP at once: the evidence. */
  /** `sameRound`: shorter than one sampler round (not counted; see run.ts). */
  /** `view: 'arp'`: from the outside ARP view (holders: the nodes whose MACs answered one request). */
  dualIntervals?: {
    from: number;
    to: number;
    holders: string[];
    phase: 'fault' | 'recovery';
    sameRound?: true;
    view?: 'arp';
  }[];
  /** The VIP ended on exactly one healthy node, stable for the settle time, and the client got answers from it. */
  endedOnOneHealthy: boolean;
  finalHolders: string[];
  answeredBy: string | null;
  /** Monotonic step times relative to the fault (ms). */
  steps: StepOffsets;
  /** Observation window (ms after the fault). */
  observedMs: number;
  note?: string;
  /** Set when the iteration could not be run (setup failure): it is left out of the figures. */
  error?: string;
}

/** Every field: ms after the fault injection. */
export interface StepOffsets extends LoggedSteps {
  lastOkBefore?: number;
  /** Sampler: VIP gone from the old holder. */
  removed?: number;
  /** Sampler: VIP present on the new holder. */
  added?: number;
  /** Client namespace: neighbour entry of the VIP switched to the new holder's MAC (first ARP seen). */
  arp?: number;
  firstOkAfter?: number;
}
