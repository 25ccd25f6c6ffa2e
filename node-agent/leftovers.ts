// What an earlier run of this agent may have left on the machine. At start this process holds nothing: any VIP of
// ours still on an interface (finite lifetime, known from the groups, the assignments or our state file) is left
// over, and goes; so does whatever each resource left behind (SNAT rules). The state file lists the addresses this
// process may have on the machine, so that the next run finds them even when etcd no longer names them.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../common/log.js';
import { vipRef, type AddressManager, type VipRef } from './addresses.js';
import type { GroupResource } from './resources.js';

export class StateFile {
  constructor(
    private readonly dir: string,
    private readonly node: string,
    private readonly log: Logger,
  ) {}

  get path(): string {
    return `${this.dir}/${this.node}.json`;
  }

  async save(refs: readonly VipRef[]): Promise<void> {
    const vips = refs.map((r) => ({ address: `${r.address}/${r.prefix}`, iface: r.iface }));
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(this.path, JSON.stringify({ vips }));
    } catch (err) {
      this.log.warn({ err }, 'could not save state');
    }
  }

  async load(): Promise<{ address: string; iface: string }[]> {
    try {
      const saved = JSON.parse(await readFile(this.path, 'utf8')) as { vips?: { address: string; iface: string }[] };
      return saved.vips ?? [];
    } catch {
      return []; // no state file
    }
  }
}

export interface LeftoverDeps {
  addresses: AddressManager;
  resources: readonly GroupResource[];
  state: StateFile;
  log: Logger;
}

/** Removes VIPs (and resources) left over from an earlier run; `known` are every VIP etcd names, as CIDR + iface. */
export async function removeLeftovers(
  d: LeftoverDeps,
  known: Iterable<{ cidr: string; iface: string }>,
): Promise<VipRef[]> {
  const ours = new Map<string, VipRef>();
  const add = (cidr: string, iface: string) => {
    try {
      const r = vipRef(cidr, iface);
      ours.set(r.address, r);
    } catch {
      /* not ours to judge */
    }
  };
  for (const k of known) add(k.cidr, k.iface);
  for (const v of await d.state.load()) add(v.address, v.iface);
  const local = await d.addresses.list();
  const stale = local.filter((l) => ours.get(l.address)?.iface === l.iface && l.validLft !== null);
  const foreign = local.filter((l) => ours.has(l.address) && l.validLft === null);
  for (const f of foreign)
    d.log.warn(
      { vip: f.address, iface: f.iface },
      'a VIP is configured permanently on this node by someone else: not touching it',
    );
  if (stale.length) {
    d.log.info({ vips: stale.map((s) => s.address) }, 'removing VIPs left over from an earlier run');
    await d.addresses.remove(stale);
  }
  for (const r of d.resources) await r.cleanupStale?.(new Set(), d.log);
  await d.state.save([]);
  return stale;
}
