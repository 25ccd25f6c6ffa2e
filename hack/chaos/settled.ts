// What "converged" needs besides every VIP on its preferred node: every assignment names its holder's current lease
// and asks nothing more of it. A VIP can be back on the right node while the assignment still names the lease a
// killed agent left behind (the restarted agent holds on under its new one); that lease's end, and the Safety 3 wait
// for it (10.5 s when a new leader never saw its node record), would otherwise be charged to the next iteration's
// fault.
import { AssignmentRecord, decode, NodeRecord } from '../../common/keyspace.js';
import type { Cluster } from '../testbed/cluster.js';
import { withTimeout } from '../testbed/util.js';

/** True when no assignment names a stale lease, asks its holder to let go, or retires an address. */
export async function assignmentsSettled(c: Pick<Cluster, 'client' | 'keys'>): Promise<boolean> {
  const read = Promise.all([
    c.client.getAll().prefix(c.keys.assignmentsPrefix()).strings(),
    c.client.getAll().prefix(c.keys.nodesPrefix()).strings(),
  ]);
  const got = await withTimeout(
    read.catch(() => undefined),
    2000,
    undefined,
  );
  if (!got) return false;
  const [assignments, nodes] = got;
  const leaseOf = new Map<string, string>();
  for (const v of Object.values(nodes)) {
    const n = decode(NodeRecord, v);
    if (n) leaseOf.set(n.name, n.lease);
  }
  return Object.values(assignments).every((v) => {
    const a = decode(AssignmentRecord, v);
    return (
      a !== undefined &&
      a.holder !== null &&
      !a.release &&
      !a.retiring?.length &&
      a.holderLease !== null &&
      leaseOf.get(a.holder) === a.holderLease
    );
  });
}
