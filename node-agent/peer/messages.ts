// The bodies the peer channel carries. Their owner is the failsafe engineer's node-agent/failsafe/messages.ts; until
// that file is on main these are the same shapes, kept here so the transport can be built and tested on its own.
// When it lands: replace this file's contents with `export * from '../failsafe/messages.js'`.
import { z } from 'zod';

const Name = z.string().min(1).max(253);
const Id = z.string().min(1).max(64);

export const PromiseRequest = z.object({
  holder: Name,
  holderLease: z.string().min(1).max(32),
  groups: z
    .array(z.object({ group: Name, epoch: z.number().int().positive() }))
    .min(1)
    .max(1024),
  requestId: Id,
  sentAt: z.number().finite(),
});
export type PromiseRequest = z.infer<typeof PromiseRequest>;

export const PromiseAnswer = z.object({
  peer: Name,
  granted: z.boolean(),
  windowMs: z.number().int().nonnegative(),
  reason: z.enum(['reachesEtcd', 'stale', 'notFailsafe', 'holdsGroup', 'other']).optional(),
  requestId: Id,
});
export type PromiseAnswer = z.infer<typeof PromiseAnswer>;
