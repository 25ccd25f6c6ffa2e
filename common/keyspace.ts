// The etcd keyspace shared by controller, agents and CLI (DESIGN.md, "etcd keyspace").
// Every value is parsed with zod on read; a value that does not parse is treated as absent.
import { z } from 'zod';
import { ReleaseReason, TransitionReason } from './reasons.js';

export * from './reasons.js';

export const DEFAULT_PREFIX = '/vipwarden/';

export function normalizePrefix(prefix: string): string {
  if (!prefix.startsWith('/')) throw new Error(`etcd prefix must start with "/": ${prefix}`);
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export class Keys {
  readonly prefix: string;
  constructor(prefix: string = DEFAULT_PREFIX) {
    this.prefix = normalizePrefix(prefix);
  }
  leader() {
    return `${this.prefix}leader`;
  }
  groupsPrefix() {
    return `${this.prefix}groups/`;
  }
  group(group: string) {
    return `${this.prefix}groups/${group}`;
  }
  nodesPrefix() {
    return `${this.prefix}nodes/`;
  }
  node(node: string) {
    return `${this.prefix}nodes/${node}`;
  }
  heartbeatPrefix() {
    return `${this.prefix}heartbeat/`;
  }
  /** Put by the node's agent every fence.heartbeatMs, under its lease (docs/design.md "Fast fence"). */
  heartbeat(node: string) {
    return `${this.prefix}heartbeat/${node}`;
  }
  /** The node of a heartbeat/<node> key, or undefined. */
  heartbeatNode(key: string): string | undefined {
    const s = this.segments(key, 'heartbeat/');
    return s.length === 1 && s[0] ? s[0] : undefined;
  }
  healthPrefix() {
    return `${this.prefix}health/`;
  }
  /** Laid out by node first, so that an etcd role can confine each agent to its own prefix (deploy/etcd/setup.sh). */
  health(group: string, node: string) {
    return `${this.prefix}health/${node}/${group}`;
  }
  /** The group and node of a health/<node>/<group> key, or undefined. */
  healthParts(key: string): { group: string; node: string } | undefined {
    return this.nodeGroupParts(key, 'health/');
  }
  assignmentsPrefix() {
    return `${this.prefix}assignments/`;
  }
  assignment(group: string) {
    return `${this.prefix}assignments/${group}`;
  }
  releasedPrefix() {
    return `${this.prefix}released/`;
  }
  /** Node first, like health. */
  released(group: string, node: string) {
    return `${this.prefix}released/${node}/${group}`;
  }
  /** The group and node of a released/<node>/<group> key, or undefined. */
  releasedParts(key: string): { group: string; node: string } | undefined {
    return this.nodeGroupParts(key, 'released/');
  }
  private nodeGroupParts(key: string, sub: string): { group: string; node: string } | undefined {
    const s = this.segments(key, sub);
    if (s.length !== 2 || !s[0] || !s[1]) return undefined;
    return { node: s[0], group: s[1] };
  }
  presencePrefix() {
    return `${this.prefix}presence/`;
  }
  presenceParts(key: string): { group: string; node: string } | undefined {
    return this.nodeGroupParts(key, 'presence/');
  }
  /** When this node added and removed the group's addresses (common/presence.ts); node first, like health. */
  presence(group: string, node: string) {
    return this.presencePrefix() + `${node}/${group}`;
  }
  outagesPrefix(group?: string) {
    return group ? `${this.prefix}outages/${group}/` : `${this.prefix}outages/`;
  }
  /** One period with the VIP on no node, keyed by the add that ended it: in epoch order, like events. */
  outage(group: string, epoch: number, to: string, toAt: number) {
    return `${this.prefix}outages/${group}/${String(epoch).padStart(16, '0')}.${to}.${toAt}`;
  }
  eventsPrefix(group?: string) {
    return group ? `${this.prefix}events/${group}/` : `${this.prefix}events/`;
  }
  event(group: string, rev: number) {
    // Zero-padded so that a lexical range is in time order.
    return `${this.prefix}events/${group}/${String(rev).padStart(16, '0')}`;
  }
  /** A keep by failsafe promises (controller/kept.ts): sorts right after the epoch's own event. */
  keptEvent(group: string, epoch: number, node: string, at: number) {
    return `${this.event(group, epoch)}.kept.${node}.${at}`;
  }
  promiseSetsPrefix() {
    return `${this.prefix}promisesets/`;
  }
  /** A failsafe promise set, stored once by its digest (common/promise-sets.ts). */
  promiseSet(digest: string) {
    return `${this.prefix}promisesets/${digest}`;
  }
  /** The digest of a promisesets/<digest> key, or undefined. */
  promiseSetDigestOf(key: string): string | undefined {
    const s = this.segments(key, 'promisesets/');
    return s.length === 1 && s[0] && /^[0-9a-f]{64}$/.test(s[0]) ? s[0] : undefined;
  }
  drainPrefix() {
    return `${this.prefix}drain/`;
  }
  drain(node: string) {
    return `${this.prefix}drain/${node}`;
  }
  movesPrefix() {
    return `${this.prefix}moves/`;
  }
  move(group: string) {
    return `${this.prefix}moves/${group}`;
  }
  rejectedPrefix() {
    return `${this.prefix}rejected/`;
  }
  /** Written by the leader for a group it does not place (invalid, contested VIP), for `vipwarden status`. */
  rejected(group: string) {
    return `${this.prefix}rejected/${group}`;
  }

  /** Splits "<prefix>health/<node>/<group>" into its segments after the given sub-prefix. */
  segments(key: string, sub: string): string[] {
    const p = this.prefix + sub;
    if (!key.startsWith(p)) return [];
    return key.slice(p.length).split('/');
  }
}

const Millis = z.number().int().nonnegative();

// Release and transition reasons live in reasons.ts (re-exported here: the keyspace's records use them).

/** Largest renewWindowMs an agent may publish (node-agent/config.ts allows up to this much). */
export const MAX_RENEW_WINDOW_MS = 5000;

/** Largest failsafe maxKeepMs an agent may publish; the controller waits this long for a lease it knew nothing of. */
export const MAX_FAILSAFE_KEEP_MS = 600_000;

const Epoch = z.number().int().positive();

/** One (node, lease) of an assignment's promise set (failsafe rule 1). */
export const PromiseSetEntry = z.object({ node: z.string().min(1), lease: z.string().regex(/^\d+$/) });
export type PromiseSetEntry = z.infer<typeof PromiseSetEntry>;

/** A keep by promises that ended with etcd answering again (failsafe), for the event history. */
export const KeptRecord = z.object({
  group: z.string(),
  epoch: Epoch,
  /** How long the lease went without a fresh keepalive answer while the group was kept, ms. */
  ms: Millis,
  /** Wall-clock end of the keep (ms since the epoch). */
  at: Millis,
});
export type KeptRecord = z.infer<typeof KeptRecord>;

/** What an agent with the failsafe peer channel publishes in its node record (docs/design.md "Failsafe"). */
export const NodeFailsafe = z.object({
  /** W: how long this agent's promises bind it, ms. */
  windowMs: z.number().int().positive(),
  /** The longest this agent keeps a group by promises after its lease's proven end, ms. */
  maxKeepMs: z.number().int().nonnegative().max(MAX_FAILSAFE_KEEP_MS),
  /** Per held failsafe group, the epoch whose promise set this agent asks (rule 1): the controller trusts only it. */
  acks: z.record(z.string(), Epoch).default({}),
  /** The last few keeps that ended with etcd back (newest last). */
  kept: z.array(KeptRecord).max(32).default([]),
});
export type NodeFailsafe = z.infer<typeof NodeFailsafe>;

export const NodeRecord = z.object({
  name: z.string(),
  /** The node lease's id as a decimal string (64-bit ids do not fit a JS number). */
  lease: z.string().regex(/^\d+$/),
  ttlSeconds: z.number().int().positive(),
  /** Longest kernel address lifetime the agent may set, in seconds (DESIGN.md Safety 2-3). */
  maxLifetimeSeconds: z.number().int().positive(),
  /** Addresses are set only within this long after a keepalive was sent (see node-agent/lease.ts). */
  renewWindowMs: z.number().int().positive().max(MAX_RENEW_WINDOW_MS),
  addresses: z.array(z.string()).default([]),
  interfaces: z.array(z.string()).default([]),
  version: z.string(),
  startedAt: Millis,
  /** Groups whose spec this agent cannot parse (version skew), with why: it holds none of them. */
  specErrors: z.array(z.object({ group: z.string(), why: z.string() })).optional(),
  /** Where other agents reach this one over the failsafe peer channel (agent.yaml `peer:`), if it has one. */
  peer: z.object({ address: z.string(), port: z.number().int().min(1).max(65535) }).optional(),
  /** The fast fence (agent.yaml `fence:`): every VIP this agent sets is gated by an element that ends within
   * windowMs of its proof's keepalive send time (common/fence.ts). Absent: the address lifetime is the fence. */
  fence: z
    .object({
      kind: z.literal('nftables'),
      windowMs: z.number().int().positive().max(60_000),
      /** The agent puts its heartbeat key this often; the leader may then revoke its lease (common/fence.ts). */
      heartbeatMs: z.number().int().positive().max(10_000).optional(),
    })
    .optional(),
  /** Present when the agent runs failsafe (it has a peer channel): its figures, acknowledgements and keeps. */
  failsafe: NodeFailsafe.optional(),
});
export type NodeRecord = z.infer<typeof NodeRecord>;

/** A validated group spec, published by the leader so that agents can run the group's checks. */
export const GroupRecord = z.object({
  name: z.string(),
  generation: z.number().int().optional(),
  /** The spec exactly as parseFailoverGroup returned it (defaults applied); agents parse it again. */
  spec: z.unknown(),
  /** Fingerprint of spec.checks: health published for other checks is stale. */
  checksHash: z.string(),
});
export type GroupRecord = z.infer<typeof GroupRecord>;

export const CheckResult = z.object({
  name: z.string(),
  ok: z.boolean(),
  message: z.string().optional(),
  latencyMs: z.number().optional(),
});
export type CheckResult = z.infer<typeof CheckResult>;

export const HealthRecord = z.object({
  healthy: z.boolean(),
  /** keepalived-style weight sum added to the configured priority. */
  priorityDelta: z.number().int().default(0),
  checks: z.array(CheckResult).default([]),
  /** checksHash of the group the checks ran for; health for other checks is stale. */
  checksHash: z.string(),
  /** Wall-clock time of the last change (ms since epoch), and when the failure was first detected. */
  at: Millis,
  failingSince: Millis.optional(),
});
export type HealthRecord = z.infer<typeof HealthRecord>;

export const AssignmentRecord = z.object({
  group: z.string(),
  /** The node that may hold the VIPs, or null when nobody may. */
  holder: z.string().nullable(),
  /** The holder's lease id: a restarted agent (new lease) is not the holder of an old assignment. */
  holderLease: z.string().nullable(),
  vips: z.array(z.object({ address: z.string(), interface: z.string().optional() })),
  /** Set when the controller asks the holder to let go (planned move, failback, deletion). */
  release: z.boolean().default(false),
  reason: TransitionReason.catch('other'),
  /** Addresses a spec change took away from this group that the holder may still have: they stay claimed by this
   *  group until the holder acknowledges a release, or its lease ends and the Safety 3 wait has run out. */
  retiring: z.array(z.object({ address: z.string(), interface: z.string().optional() })).optional(),
  /** Hash of the parts of the spec the agent acts on (VIPs, SNAT, hooks, announce). */
  specHash: z.string(),
  at: Millis,
  leader: z.string(),
  /** When the failure that led here was detected (ms since epoch), for outage figures. */
  detectedAt: Millis.optional(),
  /** Failsafe groups only: every registered node with its lease when this was written (failsafe rule 1), named by
   *  the SHA-256 of its canonical text; the set is promisesets/<digest> (common/promise-sets.ts). */
  promiseSetRef: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** The same set inline: how records were written before sets were stored by digest, and how readers hold a
   *  record once they looked its set up. The leader writes only promiseSetRef. */
  promiseSet: z.array(PromiseSetEntry).optional(),
});
export type AssignmentRecord = z.infer<typeof AssignmentRecord>;

export const ReleasedRecord = z.object({
  epoch: z.number().int().positive(),
  /** Wall-clock time of the release, written after the addresses were removed. */
  at: Millis,
  reason: ReleaseReason.catch('other'),
  /** When the holder's failing check first failed, if that is why it let go (for the event's figures). */
  failingSince: Millis.optional(),
});
export type ReleasedRecord = z.infer<typeof ReleasedRecord>;

export const LeaderRecord = z.object({ id: z.string(), since: Millis, version: z.string() });
export type LeaderRecord = z.infer<typeof LeaderRecord>;

export const EventRecord = z.object({
  group: z.string(),
  from: z.string().nullable(),
  to: z.string().nullable(),
  reason: TransitionReason.catch('other'),
  at: Millis,
  epoch: z.number().int(),
  /** From the failure's detection to this assignment, in ms. */
  detectMs: z.number().optional(),
  /** From the old holder's loss (lease end or release) to this assignment, in ms. */
  outageMs: z.number().optional(),
  message: z.string().optional(),
});
export type EventRecord = z.infer<typeof EventRecord>;

export const DrainRecord = z.object({ at: Millis, by: z.string().default('cli') });
export const MoveRecord = z.object({ to: z.string(), at: Millis });
export type MoveRecord = z.infer<typeof MoveRecord>;
export const RejectedRecord = z.object({ reason: z.string(), at: Millis });
export type RejectedRecord = z.infer<typeof RejectedRecord>;

/** Parses JSON text with a schema; returns undefined (and calls onBad) when it does not fit. */
export function decode<T>(
  schema: z.ZodType<T>,
  text: string | null | undefined,
  onBad?: (why: string) => void,
): T | undefined {
  if (text == null) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    onBad?.(`not JSON: ${(e as Error).message}`);
    return undefined;
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    onBad?.(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    return undefined;
  }
  return r.data;
}
