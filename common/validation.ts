// zod errors for people: every bad field named by its path ("spec.nodes[1].name: must be ..."). The one formatter
// used by the FailoverGroup parse, the agent and controller configs, the keyspace decoders and `vipwarden validate`.
import type { z } from 'zod';

export interface ValidationIssue {
  /** e.g. "spec.nodes[1].name" */
  path: string;
  message: string;
}

export class ValidationError extends Error {
  constructor(
    readonly source: string,
    readonly issues: ValidationIssue[],
  ) {
    super(`${source}: ${formatIssues(issues)}`);
    this.name = 'ValidationError';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(root)';
}

export function issuesOf(err: z.ZodError): ValidationIssue[] {
  return err.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

/** "a.b: message; c[0]: message" */
export function formatIssues(issues: z.ZodError | readonly ValidationIssue[]): string {
  const list = 'issues' in issues ? issuesOf(issues) : issues;
  return list.map((i) => `${i.path}: ${i.message}`).join('; ');
}

/** Parses `raw` with `schema` or throws a ValidationError that names `source` and every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, raw: unknown, source: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (!r.success) throw new ValidationError(source, issuesOf(r.error));
  return r.data;
}
