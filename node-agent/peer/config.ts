// agent.yaml `peer:` — the failsafe peer channel (node-agent/peer/transport.ts). Absent: no peer channel.
import { isIP } from 'node:net';
import { z } from 'zod';
import { MAX_FAILSAFE_KEEP_MS } from '../../common/keyspace.js';

export const PeerConfigSchema = z
  .object({
    /** Local address to bind the UDP socket to (an IPv4 or IPv6 address of this node's LAN interface). */
    listen: z.string().refine((a) => isIP(a) !== 0, 'must be an IP address'),
    port: z.number().int().min(1).max(65535).default(9643),
    /** The address other agents send to (published in the node record); default: listen. Needed with 0.0.0.0/::. */
    advertise: z
      .string()
      .refine((a) => isIP(a) !== 0, 'must be an IP address')
      .optional(),
    /** File holding the cluster's shared peer secret (at least 32 characters; mode 0600), the same on every node. */
    keyFile: z.string().startsWith('/', 'must be an absolute path'),
    /** A message whose timestamp is further than this from our clock is refused as stale (clocks: NTP). */
    maxSkewMs: z.number().int().min(100).max(120_000).default(5000),
    /** Largest datagram accepted or sent. */
    maxDatagramBytes: z.number().int().min(512).max(65_000).default(16_384),
    /** Per source address: messages per second, and the burst above it. */
    ratePerSecond: z.number().min(1).max(10_000).default(50),
    burst: z.number().int().min(1).max(10_000).default(100),
    /** Failsafe W: how long a promise this node gives binds it (and so how long one round of promises can keep the
     * holder's VIPs). Default 5000; it must bridge a round after the margins (failsafeTimingProblem). */
    windowMs: z.number().int().min(1000).max(60_000).optional(),
    /** Failsafe maxKeep: the longest this node keeps VIPs by promises after its lease's proven end; the controller
     * waits it out before giving a group to a node the holder never asked. Default 120000. */
    maxKeepMs: z.number().int().min(1000).max(MAX_FAILSAFE_KEEP_MS).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const wildcard = p.listen === '0.0.0.0' || p.listen === '::';
    if (wildcard && p.advertise === undefined)
      ctx.addIssue({ code: 'custom', path: ['advertise'], message: `listen ${p.listen} needs an advertise address` });
    const adv = p.advertise ?? p.listen;
    if (isIP(adv) !== isIP(p.listen))
      ctx.addIssue({ code: 'custom', path: ['advertise'], message: 'must be of the same family as listen' });
  });
export type PeerConfig = z.output<typeof PeerConfigSchema>;

/** What the node record publishes: where other agents reach this one. */
export function peerEndpoint(p: PeerConfig): { address: string; port: number } {
  return { address: p.advertise ?? p.listen, port: p.port };
}
