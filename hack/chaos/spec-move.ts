// The spec-move fault: one VIP moves from group A's spec to group B's by editing both specs, and later back. The two
// edits come in either order, and apart by a random time: A drops the VIP first (for a moment no spec names it), or
// B names it first (for a moment both do: the group whose assignment claims it keeps it, B's spec is rejected until
// A's no longer does). Either way the old holder must have let go of the address before B's holder adds it (the
// controller keeps it in A's AssignmentRecord.retiring until then, docs/design.md), so dual-holder time stays 0.
import { sleep } from '../testbed/util.js';
import type { ActiveFault, ChaosEnv, Rng } from './faults.js';

type Order = 'drop-first' | 'add-first';

/** Writes A's and B's specs in the given order, `gapMs` apart. */
async function edit(env: ChaosEnv, order: Order, gapMs: number, a: [string, string[]], b: [string, string[]]) {
  const [first, second] = order === 'drop-first' ? [a, b] : [b, a];
  env.writeGroup(...first);
  if (gapMs > 0) await sleep(gapMs);
  env.writeGroup(...second);
}

export async function injectSpecMove(env: ChaosEnv, rng: Rng): Promise<ActiveFault> {
  // One VIP of a group with more than one (a group keeps at least one VIP) moves to another group.
  const from = rng.pick(env.layout.groups.filter((g) => g.vips.length > 1));
  const to = rng.pick(env.layout.groups.filter((g) => g.name !== from.name));
  const vip = from.vips[rng.int(0, from.vips.length - 1)]!;
  const order: Order = rng.next() < 0.5 ? 'drop-first' : 'add-first';
  const gapMs = rng.pick([0, 0, rng.int(50, 800)]);
  // The way back comes in its own order: B drops it first, or A names it again first.
  const backOrder: Order = rng.next() < 0.5 ? 'drop-first' : 'add-first';
  const backGapMs = rng.pick([0, 0, rng.int(50, 800)]);
  const without = from.vips.filter((v) => v !== vip);
  await edit(env, order, gapMs, [from.name, without], [to.name, [...to.vips, vip]]);
  return {
    kind: 'spec-move',
    target: `${vip} ${from.name}->${to.name} (${order} ${gapMs} ms, back ${backOrder} ${backGapMs} ms)`,
    churn: false,
    undo: () => edit(env, backOrder, backGapMs, [to.name, to.vips], [from.name, from.vips]),
  };
}
