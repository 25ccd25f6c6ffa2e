import { describe, expect, test } from '@jest/globals';
import { Keys } from './keyspace.js';

describe('Keys: per-node layout of health and released (etcd roles confine an agent to its own prefix)', () => {
  const k = new Keys('/vw/');
  test('health/<node>/<group> and released/<node>/<group>, parsed back', () => {
    expect(k.health('web', 'node1')).toBe('/vw/health/node1/web');
    expect(k.released('web', 'node1')).toBe('/vw/released/node1/web');
    expect(k.healthParts(k.health('web', 'node1'))).toEqual({ group: 'web', node: 'node1' });
    expect(k.releasedParts(k.released('db', 'node2'))).toEqual({ group: 'db', node: 'node2' });
  });
  test('anything else is not a health or released key', () => {
    expect(k.healthParts('/vw/health/node1')).toBeUndefined();
    expect(k.healthParts('/vw/health/node1/web/x')).toBeUndefined();
    expect(k.healthParts('/other/health/node1/web')).toBeUndefined();
    expect(k.releasedParts(k.health('web', 'node1'))).toBeUndefined();
  });
});
