// spec.arbiterLoss (issue 12): failsafe | release, absent means failsafe; anything else is rejected by path.
import { describe, expect, test } from '@jest/globals';
import { arbiterLossOf, parseFailoverGroup } from './failovergroup.js';

const doc = (spec: Record<string, unknown>) => ({
  apiVersion: 'vipwarden.io/v1alpha1',
  kind: 'FailoverGroup',
  metadata: { name: 'web' },
  spec: { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node-a' }], ...spec },
});

describe('spec.arbiterLoss', () => {
  test.each(['failsafe', 'release'] as const)('%s parses and is kept', (arbiterLoss) => {
    const r = parseFailoverGroup(doc({ arbiterLoss }));
    if (!r.ok) throw r.error;
    expect(r.group.spec.arbiterLoss).toBe(arbiterLoss);
    expect(arbiterLossOf(r.group.spec)).toBe(arbiterLoss);
  });

  test('absent means failsafe, and stays absent in the parsed spec (older specs hash alike)', () => {
    const r = parseFailoverGroup(doc({}));
    if (!r.ok) throw r.error;
    expect('arbiterLoss' in r.group.spec).toBe(false);
    expect(arbiterLossOf(r.group.spec)).toBe('failsafe');
  });

  test.each(['keep', '', 'Failsafe', 1])('%p is rejected naming spec.arbiterLoss', (arbiterLoss) => {
    const r = parseFailoverGroup(doc({ arbiterLoss }), 'test');
    if (r.ok) throw new Error('expected a validation error');
    expect(r.error.issues.map((i) => i.path)).toContain('spec.arbiterLoss');
  });
});
