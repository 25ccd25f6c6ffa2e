// The `lease` section fields that agent.yaml and controller.yaml share (common/lease.ts LeaseTiming), and their defaults.
import { z } from 'zod';

export const leaseConfigFields = {
  ttlSeconds: z.number().int().min(1).max(60).default(2),
  keepaliveIntervalMs: z.number().int().min(20).max(10_000).default(250),
  marginMs: z.number().int().min(50).max(10_000).default(500),
};

/** The section's value when a file has none; each schema spreads its own copy, as each had its own literal. */
export const LEASE_CONFIG_DEFAULT = { ttlSeconds: 2, keepaliveIntervalMs: 250, marginMs: 500 };
