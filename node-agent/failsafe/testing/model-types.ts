// Shared parts of the failsafe model (testing/model.ts, testing/arbiter.ts): the model's timings, the faults it
// injects, its messages, and the dual-holder check.
import { KERNEL_SLACK_MS as PRODUCT_KERNEL_SLACK_MS } from '../../../common/kernel-lifetime.js';
import type { Ablation, FailsafeTiming, PromiseSetEntry } from '../rules.js';
import type { PromiseAnswer, PromiseRequest } from '../messages.js';

export const TICK_MS = 20;
export const TTL_MS = 2000;
export const KEEPALIVE_MS = 250;
export const MARGIN_MS = 500;
export const RENEW_WINDOW_MS = 500;
/** The product's kernel slack (common/kernel-lifetime.ts): the modelled kernel deletes that late at most. */
export const KERNEL_SLACK_MS = PRODUCT_KERNEL_SLACK_MS;
/** addressOverhangMs with the defaults: L 1 s + window 500 ms + the kernel slack − TTL 2 s. */
export const OVERHANG_MS = 1000 + RENEW_WINDOW_MS + KERNEL_SLACK_MS - TTL_MS;
export const CONTROLLER_POLL_MS = 100;
export const MODEL_TIMING: FailsafeTiming = {
  windowMs: 5000,
  maxKeepMs: 10_000,
  roundIntervalMs: 250,
  answerTimeoutMs: 500,
  marginMs: MARGIN_MS,
  kernelSlackMs: KERNEL_SLACK_MS,
  driftPpm: 1000,
};
export const MAX_NODES = 6;
export const GROUP = 'g';

export type Fault =
  | { at: number; kind: 'etcd-down'; dur: number }
  /** The nodes in `mask` lose etcd (their links to it both ways). */
  | { at: number; kind: 'cut-etcd'; mask: number; dur: number }
  /** The nodes in `mask` lose the LAN to every other node. */
  | { at: number; kind: 'cut-lan'; mask: number; dur: number }
  /** LAN messages take up to `extraMs` longer (a congested switch, a paused transport). */
  | { at: number; kind: 'slow-lan'; extraMs: number; dur: number }
  /** SIGSTOP: the process does nothing, its clock and the kernel go on; messages wait for it. */
  | { at: number; kind: 'freeze'; node: number; dur: number }
  /** The agent dies (addresses stay until their lifetime ends) and starts again `dur` later with nothing. */
  | { at: number; kind: 'restart'; node: number; dur: number }
  /** The controller moves the group away from its holder (a failback, a drain): it asks the holder to let go and
   * gives the group to another node, at random, once the holder acknowledged. */
  | { at: number; kind: 'move' }
  | { at: number; kind: 'join' }
  | { at: number; kind: 'leave'; node: number };

export interface ModelParams {
  initialNodes: number;
  /** Per node slot: clock rate error in ppm (within ±driftPpm) and offset. */
  ratePpm: number[];
  offsetMs: number[];
  maxDelayMs: number;
  lossPct: number;
  seed: number;
  faults: Fault[];
  horizonMs: number;
  without?: readonly Ablation[];
}

export interface Interval {
  node: number;
  start: number;
  end: number;
}

export interface ModelResult {
  intervals: Interval[];
  dual: { a: Interval; b: Interval } | undefined;
  trace: string[];
}

export type Msg =
  | { kind: 'ka'; lease: string; sentAt: number; ack: number; letGo: number }
  | { kind: 'grant'; sentAt: number }
  | { kind: 'ka-answer'; lease: string; sentAt: number; ttl: number; asg: Assignment; registry: string[] }
  | { kind: 'grant-answer'; lease: string; sentAt: number; asg: Assignment; registry: string[] }
  | { kind: 'req'; from: number; body: PromiseRequest }
  | { kind: 'ans'; body: PromiseAnswer };

export interface Assignment {
  epoch: number;
  holder: string | null;
  holderLease: string | null;
  set: PromiseSetEntry[];
  /** The holder is asked to let go (a move). */
  release?: boolean;
}

/** mulberry32: deterministic message delays and losses from the run's seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function findDual(intervals: readonly Interval[]): { a: Interval; b: Interval } | undefined {
  for (const a of intervals)
    for (const b of intervals) if (a.node < b.node && a.start < b.end && b.start < a.end) return { a, b };
  return undefined;
}
