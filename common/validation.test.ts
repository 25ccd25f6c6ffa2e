import { describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import { formatIssues, formatPath, parseOrThrow, ValidationError } from './validation.js';

describe('validation', () => {
  test('paths read like the document', () => {
    expect(formatPath(['spec', 'nodes', 1, 'name'])).toBe('spec.nodes[1].name');
    expect(formatPath([])).toBe('(root)');
  });

  test('every bad field is named', () => {
    const S = z.object({ a: z.number(), b: z.object({ c: z.string() }) }).strict();
    const r = S.safeParse({ a: 'x', b: { c: 1 } });
    expect(r.success).toBe(false);
    expect(formatIssues(r.error!)).toMatch(/^a: .*; b\.c: /);
    let caught: unknown;
    try {
      parseOrThrow(S, { a: 1, b: { c: 'y' }, d: 1 }, 'f.yaml');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).issues[0]!.path).toBe('(root)');
    expect((caught as Error).message).toMatch(/^f\.yaml: \(root\): .*"d"/);
  });
});
