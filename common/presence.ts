// What clients saw (issue 15.14): each agent publishes when it added and removed a group's addresses
// (presence/<node>/<group>, under its lease, republished under a new one), and the leader pairs every removal with
// the next add into an outage record (outages/<group>/...): a period in which the VIP was on no node, measured from
// the agents' own times, not the controller's. History only: nothing reads these to decide.
import { z } from 'zod';
import { ReleaseReason, TransitionReason } from './keyspace.js';

const Millis = z.number().int().nonnegative();

/** Changes an agent keeps (and publishes) per group: enough to pair with the other nodes' across a few moves. */
export const PRESENCE_KEPT = 8;

export const PresenceChange = z.object({
  kind: z.enum(['add', 'remove']),
  epoch: z.number().int().positive(),
  /** Wall-clock ms of the change on the agent's machine. */
  at: Millis,
  /** Monotonic ms of the same moment (CLOCK_MONOTONIC of that machine, comparable within one boot). */
  mono: z.number().nonnegative(),
  /** remove: why the agent let go (a ReleaseReason); add: the assignment's reason (a TransitionReason). */
  reason: z.string().optional(),
  /** remove: the kernel lifetime had run out before the agent removed the addresses: `at` is that lifetime's end. */
  expired: z.boolean().optional(),
});
export type PresenceChange = z.infer<typeof PresenceChange>;

export const PresenceRecord = z.object({
  /** The machine's boot id: monotonic times of one boot compare. */
  boot: z.string().optional(),
  changes: z.array(PresenceChange).max(64),
});
export type PresenceRecord = z.infer<typeof PresenceRecord>;

export const OutageRecord = z.object({
  group: z.string(),
  /** The node that removed the addresses (null: none said so, e.g. its agent was killed). */
  from: z.string().nullable(),
  /** The node that added them again (the same node after a self-caused outage). */
  to: z.string(),
  /** holder-let-go when the same node took them back; otherwise the reason of the assignment it added them for. */
  reason: TransitionReason.catch('other'),
  /** Why `from` let go, as its agent said. */
  releaseReason: ReleaseReason.catch('other').optional(),
  /** The epoch under which the addresses came back. */
  epoch: z.number().int(),
  /** Wall-clock ms of the removal (from's clock) and of the add (to's clock). */
  fromAt: Millis.optional(),
  toAt: Millis,
  /** The time the VIP was on no node, ms (monotonic when one machine did both, else the two wall clocks). */
  gapMs: z.number().nonnegative().optional(),
  measured: z.enum(['monotonic', 'wall']).optional(),
  /** The addresses ran out by their kernel lifetime before the agent removed them. */
  expired: z.boolean().optional(),
  message: z.string().optional(),
});
export type OutageRecord = z.infer<typeof OutageRecord>;
