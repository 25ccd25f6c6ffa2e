// Fixtures for tests of the controller's reads and writes.
import type { AssignmentRecord } from '../../common/keyspace.js';

/** A plain assignment of `group` to `holder` (lease '1', one /32 VIP from the test range). */
export function assignmentRecord(group: string, holder: string): AssignmentRecord {
  return {
    group,
    vips: [{ address: '198.18.0.1/32' }],
    release: false,
    specHash: 'h',
    at: 0,
    leader: 'c',
    holder,
    holderLease: '1',
    reason: 'initial',
  };
}
