// Pairs the agents' own add and remove times into the periods a group's VIPs were on no node (issue 15.14): a
// removal after which no node holds them opens a gap, the next add on any node closes it. Pure: no I/O, no clock.
import { ReleaseReason, TransitionReason } from '../common/keyspace.js';
import type { OutageRecord, PresenceChange } from '../common/presence.js';

/** One change as the leader merged it: which node, and the boot of the machine it was measured on. */
export interface NodeChange extends PresenceChange {
  node: string;
  boot?: string;
}

/** Removals sort before adds at the same ms: a handover removes first. */
function order(a: NodeChange, b: NodeChange): number {
  return a.at - b.at || (a.kind === b.kind ? 0 : a.kind === 'remove' ? -1 : 1) || a.mono - b.mono;
}

export function pairOutages(group: string, changes: readonly NodeChange[]): OutageRecord[] {
  const all = [...changes].sort(order);
  const out: OutageRecord[] = [];
  const holders = new Map<string, number>(); // node -> epoch it added
  let open: NodeChange | undefined; // the removal after which no node held them
  all.forEach((c, i) => {
    if (c.kind === 'remove') {
      holders.delete(c.node);
      if (holders.size === 0 && !open) open = c;
      return;
    }
    if (holders.size === 0) {
      if (open) out.push(gap(group, open, c));
    } else {
      // Another node still counts as holding an older epoch: its removal was not reported (its agent was killed,
      // or has not reached etcd since). A removal it reports later, at or after this add, was no gap at all.
      for (const [node, epoch] of [...holders]) {
        if (node === c.node || epoch >= c.epoch) continue;
        holders.delete(node);
        const later = all.slice(i + 1).some((x) => x.node === node && x.kind === 'remove');
        if (!later) out.push(unknownStart(group, node, epoch, c));
      }
    }
    holders.set(c.node, c.epoch);
    open = undefined;
  });
  return out;
}

function addReason(c: NodeChange): TransitionReason {
  const r = TransitionReason.safeParse(c.reason);
  return r.success ? r.data : 'other';
}

function gap(group: string, rm: NodeChange, add: NodeChange): OutageRecord {
  const sameMachine = rm.node === add.node && rm.boot !== undefined && rm.boot === add.boot;
  const ms = sameMachine ? add.mono - rm.mono : add.at - rm.at;
  const rel = ReleaseReason.safeParse(rm.reason);
  return {
    group,
    from: rm.node,
    to: add.node,
    reason: rm.node === add.node && rm.epoch === add.epoch ? 'holder-let-go' : addReason(add),
    ...(rel.success ? { releaseReason: rel.data } : {}),
    epoch: add.epoch,
    fromAt: rm.at,
    toAt: add.at,
    gapMs: Math.max(0, Math.round(ms)),
    measured: sameMachine ? 'monotonic' : 'wall',
    ...(rm.expired ? { expired: true } : {}),
  };
}

function unknownStart(group: string, from: string, epoch: number, add: NodeChange): OutageRecord {
  return {
    group,
    from,
    to: add.node,
    reason: addReason(add),
    epoch: add.epoch,
    toAt: add.at,
    message: `${from} (epoch ${epoch}) did not say when its addresses went (its agent was killed, or is cut off)`,
  };
}
