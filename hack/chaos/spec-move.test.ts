import { Rng, type ChaosEnv, type ChaosGroup } from './faults.js';
import { injectSpecMove } from './spec-move.js';

const groups: ChaosGroup[] = [
  { name: 'a', vips: ['198.18.1.100/24', '2001:2:0:1::100/64'], order: ['n1', 'n2', 'n3'] },
  { name: 'b', vips: ['198.18.1.101/24', '198.18.1.103/24'], order: ['n2', 'n3', 'n1'] },
  { name: 'c', vips: ['198.18.1.102/24'], order: ['n3', 'n1', 'n2'] },
];

function fakeEnv() {
  const specs = new Map(groups.map((g) => [g.name, g.vips]));
  const writes: [string, string[]][] = [];
  const env = {
    layout: { groups, vipGroup: new Map() },
    writeGroup: (name: string, vips: string[]) => {
      writes.push([name, vips]);
      specs.set(name, vips);
    },
    log: () => undefined,
  } as unknown as ChaosEnv;
  /** Groups whose spec names `vip` now. */
  const owners = (vip: string) => [...specs].filter(([, v]) => v.includes(vip)).map(([g]) => g);
  return { env, specs, writes, owners };
}

describe('spec-move fault', () => {
  it('moves one VIP to another group in either order, and back, leaving the specs as they were', async () => {
    const orders = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const { env, specs, writes, owners } = fakeEnv();
      const f = await injectSpecMove(env, new Rng(seed));
      const m = /^(\S+) (\w)->(\w) \((drop-first|add-first) \d+ ms, back (drop-first|add-first) \d+ ms\)$/.exec(
        f.target,
      );
      expect(m).not.toBeNull();
      const [, vip, from, to, order, back] = m!;
      orders.add(`${order}/${back}`);
      expect(f.kind).toBe('spec-move');
      expect(from).not.toBe(to);
      expect(owners(vip!)).toEqual([to]);
      expect(specs.get(from!)!.length).toBeGreaterThan(0);
      // Drop-first writes the old group first (no spec names it for a moment); add-first the new one.
      expect(writes.map(([g]) => g)).toEqual(order === 'drop-first' ? [from, to] : [to, from]);
      await f.undo();
      expect(writes.slice(2).map(([g]) => g)).toEqual(back === 'drop-first' ? [to, from] : [from, to]);
      expect(new Map(specs)).toEqual(new Map(groups.map((g) => [g.name, g.vips])));
    }
    expect(orders.size).toBeGreaterThanOrEqual(3);
  });
});
