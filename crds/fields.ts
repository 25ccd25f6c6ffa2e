// Field types shared by the FailoverGroup API files (failovergroup.ts, checks.ts, cloud.ts, virtualserver.ts).
// This file imports none of them.
import { z } from 'zod';
import { isInterfaceName, parseCidr } from '../common/ip.js';

/** A duration field in milliseconds with its bounds and default, described for the CRD. */
export const ms = (what: string, min: number, max: number, def: number) =>
  z.number().int().min(min).max(max).default(def).describe(`${what}, in milliseconds (${min}..${max}).`);

export const CidrString = z
  .string()
  .min(3)
  .max(64)
  .superRefine((v, ctx) => {
    const c = parseCidr(v);
    if (typeof c === 'string') ctx.addIssue({ code: 'custom', message: c });
  });

export const Port = z.number().int().min(1).max(65535);
export const InterfaceName = z
  .string()
  .min(1)
  .max(15)
  .refine(isInterfaceName, 'must be a Linux interface name (1-15 characters, letters, digits, _ . : -)');
/** The scheme of an HTTP check and what its answer must be (a node's check and a real server's check). */
export const httpAnswerFields = {
  scheme: z.enum(['http', 'https']).default('http'),
  expectStatus: z
    .array(z.number().int().min(100).max(599))
    .max(16)
    .optional()
    .describe('Accepted status codes; any 2xx or 3xx when absent.'),
  expectBody: z.string().max(1024).optional().describe('A substring the body must contain.'),
};

/** A name from the agent's local configuration (commands, hooks, credentials). */
export const LocalName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/, 'must be a lower-case name (letters, digits, - and _)');

/** An issue on every item whose key an earlier item already has (items without a key are skipped). */
export function flagDuplicates<T>(
  ctx: z.RefinementCtx,
  items: readonly T[],
  keyOf: (item: T) => string | undefined,
  path: (i: number) => (string | number)[],
  message: (key: string, first: number) => string,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const key = keyOf(item);
    if (key === undefined) return;
    const j = seen.get(key);
    if (j !== undefined) ctx.addIssue({ code: 'custom', path: path(i), message: message(key, j) });
    else seen.set(key, i);
  });
}

/** flagDuplicates over `name`: `duplicate <what> name "x" (also <field>[j])`, at <field>[i].name. */
export function flagDuplicateNames(
  ctx: z.RefinementCtx,
  items: readonly { name: string }[],
  field: string,
  what: string,
): void {
  flagDuplicates(
    ctx,
    items,
    (item) => item.name,
    (i) => [field, i, 'name'],
    (name, j) => `duplicate ${what} name "${name}" (also ${field}[${j}])`,
  );
}
