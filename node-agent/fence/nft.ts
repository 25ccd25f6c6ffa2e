// The fast fence on this node (issue 13, docs/design.md "Fast fence"): nftables set elements with a millisecond
// timeout that gate each VIP (ARP, traffic to and from it, SNAT from it). Holdings opens the fence with the same
// proof and deadline as the address lifetime, right before the address is set, and closes it once the address is
// gone. The table is loaded with `nft -f` (once, before the first element); elements go through the data-path
// helper (node-agent/native/fence.c), which checks the deadline immediately before the kernel acts.
import type { Exec } from '../../common/exec.js';
import { fenceExpiresAt } from '../../common/fence.js';
import type { Logger } from '../../common/log.js';
import { DeadlinePassedError, type VipRef } from '../addresses.js';
import { DataplaneError, DeadlineExpiredError, type Dataplane } from '../dataplane.js';
import { chunks, FENCE_TABLE, fenceRuleset } from './ruleset.js';

const ENOENT = 2;
const ETIME = 62;

export interface FenceOptions {
  /** How long after the proof's keepalive was sent an element may stay open (common/fence.ts). */
  windowMs: number;
  table?: string;
  /** argv[0] of nft (default: nft on PATH). */
  nft?: string;
}

/** Loads (or loads again: elements stay) the fence's table with `nft -f`; throws when nft cannot. */
export async function loadFenceTable(exec: Exec, table: string = FENCE_TABLE, nft = 'nft'): Promise<void> {
  await exec([nft, '-f', '-'], { input: fenceRuleset(table), timeoutMs: 10_000 });
}

export class NftFence {
  readonly windowMs: number;
  readonly table: string;
  private loaded: Promise<void> | undefined;
  /** Per address, the end (monotonic ms) its live element was last opened until; for the history only. */
  private readonly ends = new Map<string, number>();

  constructor(
    private readonly exec: Exec,
    private readonly dataplane: Dataplane | undefined,
    private readonly log: Logger,
    private readonly opts: FenceOptions,
  ) {
    this.windowMs = opts.windowMs;
    this.table = opts.table ?? FENCE_TABLE;
    fenceRuleset(this.table); // validates the name
  }

  /** Loads the table (safe to repeat: elements stay). Every later call waits for the first load. */
  setup(): Promise<void> {
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async load(): Promise<void> {
    if (!this.dataplane) throw new Error('fence: nftables needs the data-path helper (vipwarden-dataplane)');
    await loadFenceTable(this.exec, this.table, this.opts.nft);
    this.log.info({ table: this.table, windowMs: this.windowMs }, 'fast fence table loaded');
  }

  /**
   * Opens (or extends) the fence of `refs` until the keepalive sent at `sentAt` plus the window, only if the helper
   * can act before `deadlineMs`. Throws DeadlinePassedError when it could not (nothing changed), and any other
   * error when the kernel refused: then the addresses must not be set either.
   */
  async open(refs: readonly VipRef[], o: { sentAt: number; deadlineMs: number }): Promise<void> {
    await this.openUntil(refs, { expiresMs: fenceExpiresAt(o.sentAt, this.windowMs), deadlineMs: o.deadlineMs });
  }

  /**
   * Opens (or extends) the fence of `refs` until `expiresMs` (monotonic ms), on a proof other than one keepalive
   * answer: a failsafe keep's promise bound (docs/design.md "Failsafe", rule 4). Same errors as open().
   */
  async openUntil(refs: readonly VipRef[], o: { expiresMs: number; deadlineMs: number }): Promise<void> {
    try {
      await this.openOnce(refs, o);
    } catch (err) {
      // The table is gone (someone ran `nft flush ruleset`): load it again and set the elements once more.
      if (!(err instanceof DataplaneError && err.errno === ENOENT)) throw err;
      this.log.error({ table: this.table }, 'fast fence table missing (flushed?): loading it again');
      this.loaded = undefined;
      await this.openOnce(refs, o);
    }
  }

  private async openOnce(refs: readonly VipRef[], o: { expiresMs: number; deadlineMs: number }): Promise<void> {
    if (refs.length === 0) return;
    await this.setup();
    const dp = this.dataplane!;
    const expiresMs = o.expiresMs;
    const addrs = [...new Set(refs.map((r) => r.address))];
    const results = await Promise.allSettled(
      chunks(addrs).map((c) => dp.fenceSet(this.table, c, { expiresMs, deadlineMs: o.deadlineMs })),
    );
    const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason as Error);
    // ETIME: the helper's send was slow and it closed the fence again; like a refused deadline, nothing is open.
    const closed = (e: Error) =>
      e instanceof DeadlineExpiredError || (e instanceof DataplaneError && e.errno === ETIME);
    if (failed.some(closed)) throw new DeadlinePassedError(o.deadlineMs);
    if (failed[0]) throw failed[0];
    for (const a of addrs) this.ends.set(a, expiresMs);
  }

  /** When the element last opened for `ref` ends (monotonic ms), if one was opened and not closed since. */
  openUntilMs(ref: VipRef): number | undefined {
    return this.ends.get(ref.address);
  }

  /** Closes the fence of addresses that are gone (removes live elements and gates); errors are logged only: an
   * element left behind without its address gates nothing that is here, and a live one runs out by itself. */
  async close(refs: readonly VipRef[]): Promise<void> {
    if (refs.length === 0 || !this.dataplane) return;
    const dp = this.dataplane;
    const addrs = [...new Set(refs.map((r) => r.address))];
    for (const a of addrs) this.ends.delete(a);
    await Promise.all(
      chunks(addrs).map((c) =>
        dp.fenceDel(this.table, c).catch((err: unknown) => this.log.warn({ err, vips: c }, 'fence: could not delete')),
      ),
    );
  }
}
