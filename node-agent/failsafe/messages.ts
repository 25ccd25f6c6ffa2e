// The two message bodies of failsafe mode (docs/design.md "Failsafe (arbiter loss)"), shared by the promise rules
// (rules.ts) and the authenticated peer transport (node-agent/peer/). The transport authenticates, rejects replays
// and then parses a body with these schemas; a body that does not parse is dropped and logged, never trusted.
//
// Times in a message are informational only: a peer never compares the sender's clock with its own. The holder
// bounds its keep by its OWN send time of the request that was answered, the peer binds itself from its OWN time of
// granting (rules 3-4).
import { z } from 'zod';

/** Reasons a peer refuses a promise. Data, not free text: they cross a process boundary. */
export const RefusalReason = z.enum([
  /** The peer reaches etcd itself: the controller may assign to it, so it must stay free (rule 2). */
  'reachesEtcd',
  /** The request names a lease or epoch the peer knows to be stale (it saw a newer one before losing etcd). */
  'stale',
  /** The peer is not in failsafe mode for a group asked about (arbiterLoss: release, or it does not know it). */
  'notFailsafe',
  /** The peer holds or is adding one of the groups itself: it cannot promise to stay off it. */
  'holdsGroup',
  /** Anything else (malformed, too many groups, shutting down). */
  'other',
]);
export type RefusalReason = z.infer<typeof RefusalReason>;

const NodeName = z.string().min(1).max(253);
const GroupName = z.string().min(1).max(253);
/** Assignment epoch: the mod revision of assignments/<group>. */
const Epoch = z.number().int().positive();
/** Bounded so that one request cannot make a peer do unbounded work. */
export const MAX_GROUPS_PER_REQUEST = 1024;

export const PromiseRequest = z.object({
  /** The node asking: it holds the groups listed and has no fresh keepalive answer. */
  holder: NodeName,
  /** The holder's node lease id (as in AssignmentRecord.holderLease). */
  holderLease: z.string().min(1).max(32),
  groups: z
    .array(z.object({ group: GroupName, epoch: Epoch }))
    .min(1)
    .max(MAX_GROUPS_PER_REQUEST),
  /** Unique per holder process and request; the answer carries it back. */
  requestId: z.string().min(1).max(64),
  /** The sender's own monotonic ms when it sent the request. Informational only: never compared across nodes. */
  sentAt: z.number().finite(),
});
export type PromiseRequest = z.infer<typeof PromiseRequest>;

export const PromiseAnswer = z.object({
  /** The node answering. */
  peer: NodeName,
  granted: z.boolean(),
  /** W: how long (ms) the peer binds itself from the moment it granted. 0 when refused. */
  windowMs: z.number().int().nonnegative(),
  reason: RefusalReason.optional(),
  /** The requestId of the request answered. */
  requestId: z.string().min(1).max(64),
});
export type PromiseAnswer = z.infer<typeof PromiseAnswer>;
