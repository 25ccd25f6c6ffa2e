// A cloud floating IP pointed at the holder (spec.cloud); each provider is one file in node-agent/cloud/.
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { LocalName } from './fields.js';

/** Cloud providers that can point a floating IP at the holder; each is one file in node-agent/cloud/. */
export const CloudProviders = ['digitalocean'] as const;

export const CloudSpec = z
  .object({
    provider: z.enum(CloudProviders),
    floatingIp: z.string().min(1).max(64).describe('The provider-side floating (reserved) IP to point at the holder.'),
    credentials: LocalName.optional().describe(
      "Name of a token file in the agent's local configuration; the provider's own name (e.g. digitalocean) when absent.",
    ),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.provider === 'digitalocean' && !isIPv4(c.floatingIp))
      ctx.addIssue({
        code: 'custom',
        path: ['floatingIp'],
        message: 'a DigitalOcean floating IP is an IPv4 address, like 203.0.113.10',
      });
  });
