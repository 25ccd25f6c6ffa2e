// Announcing a VIP's new home: gratuitous ARP (IPv4) in request and reply forms, unsolicited neighbour
// advertisements (IPv6). A burst at once, then repeats for a while, stopped when the group is released.
// Sent by the data-path helper (node-agent/dataplane.ts) when it is built, else by arping and vipwarden-ndsend.
// With the helper, the very first gratuitous ARP of a new IPv4 address goes out from the helper itself right after
// the kernel acknowledged the add (AddressManager asks for it); the burst and the repeats here follow as before.
import type { Exec } from '../common/exec.js';
import { realClock, type Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { VipRef } from './addresses.js';
import { Dataplane, isExecutable, nativeHelperPath, sharedDataplane } from './dataplane.js';
import type { GroupResource, ResourceContext } from './resources.js';

export interface AnnounceSettings {
  burst: number;
  repeatIntervalMs: number;
  repeatForMs: number;
}

export const DEFAULT_ANNOUNCE: AnnounceSettings = { burst: 3, repeatIntervalMs: 1000, repeatForMs: 3000 };

export interface Announcer {
  /** Sends `count` announcements for one address; resolves when sent. Aborting stops a send under way. */
  send(vip: VipRef, count: number, signal?: AbortSignal): Promise<void>;
}

/** IPv4 with Thomas Habets' arping (Debian package arping): -U unsolicited, -P reply form, -S source = VIP. */
export function arpingArgv(vip: VipRef, count: number, reply: boolean): string[] {
  return [
    'arping',
    '-q',
    '-U',
    ...(reply ? ['-P'] : []),
    '-c',
    String(count),
    '-W',
    '0.01',
    '-i',
    vip.iface,
    '-S',
    vip.address,
    vip.address,
  ];
}

/** Between the packets of a burst: as arping -W 0.01 (IPv4) and vipwarden-ndsend -w 20 (IPv6) did. */
export const SPACING_MS: Record<4 | 6, number> = { 4: 10, 6: 20 };
/** An announcement request that the helper has not sent by then is dropped (a freeze came in between). */
const ANNOUNCE_DEADLINE_MS = 500;

export class CommandAnnouncer implements Announcer {
  private warnedV6 = false;
  private readonly sentOnAdd = new Map<string, number>();
  /** The data-path helper, when there is one; undefined: arping and sendNa. */
  readonly dataplane: Dataplane | undefined;

  /**
   * @param sendNa the vipwarden-ndsend sender (extras.ts): when undefined, IPv6 VIPs are not announced at all
   *   (agent.yaml `announce.ndsend: off`, or no helper); when given and the data-path helper is there, the helper
   *   sends the advertisements instead of a vipwarden-ndsend per call.
   * @param dataplane the helper to use; default: the process's shared helper when it is built next to this
   *   module; null: commands only.
   */
  constructor(
    private readonly exec: Exec,
    private readonly log: Logger,
    private readonly sendNa?: (vip: VipRef, count: number) => Promise<void>,
    private readonly onSent?: (vip: VipRef, n: number) => void,
    dataplane?: Dataplane | null,
  ) {
    this.dataplane =
      dataplane === null
        ? undefined
        : (dataplane ?? (isExecutable(nativeHelperPath()) ? sharedDataplane(nativeHelperPath()) : undefined));
    // The helper's own first announcement after an add counts as sent too, reported with the first packet of the
    // burst that follows: by then the metrics know the VIP's group (vipGroupResource runs after the add).
    if (onSent)
      this.dataplane?.on('announced', (vip: VipRef, n: number) => {
        const k = `${vip.iface}|${vip.address}`;
        this.sentOnAdd.set(k, (this.sentOnAdd.get(k) ?? 0) + n);
      });
  }

  async send(vip: VipRef, count: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    if (vip.family === 6 && !this.sendNa) {
      if (!this.warnedV6) {
        this.warnedV6 = true;
        this.log.warn({ vip: vip.address }, 'no unsolicited neighbour advertisement sender configured for IPv6');
      }
      return;
    }
    if (this.dataplane) return this.sendWith(this.dataplane, vip, count, signal);
    if (vip.family === 6 && this.sendNa) {
      await this.sendNa(vip, count);
      this.onSent?.(vip, count);
      return;
    }
    // arping exits 1 when nobody answers, which is normal for gratuitous ARP.
    // A release aborts the signal before it removes the address: an arping still running then would tell the
    // neighbours that the VIP lives here after it has moved, so it is killed.
    try {
      await Promise.all([
        this.exec(arpingArgv(vip, count, false), { timeoutMs: 3000, okCodes: [1], signal }),
        this.exec(arpingArgv(vip, count, true), { timeoutMs: 3000, okCodes: [1], signal }),
      ]);
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    this.onSent?.(vip, count * 2);
  }

  /**
   * `count` rounds, SPACING_MS apart, each one request to the helper (IPv4: request and reply form). The helper
   * refuses to announce an address that is not on the interface any more; a release aborts the signal first.
   */
  private async sendWith(dp: Dataplane, vip: VipRef, count: number, signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < count; i++) {
      if (signal?.aborted) return;
      if (i > 0) await realClock.sleep(SPACING_MS[vip.family], signal);
      if (signal?.aborted) return;
      const deadline = realClock.mono() + ANNOUNCE_DEADLINE_MS;
      try {
        if (vip.family === 4) await dp.garp(vip, deadline);
        else await dp.na(vip, deadline);
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      const k = `${vip.iface}|${vip.address}`;
      const before = this.sentOnAdd.get(k) ?? 0;
      this.sentOnAdd.delete(k);
      this.onSent?.(vip, (vip.family === 4 ? 2 : 1) + before);
    }
  }
}

/** The announcement resource: burst on acquire, then repeats in the background until released or done. */
export class AnnounceResource implements GroupResource {
  readonly name = 'announce';
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly announcer: Announcer,
    private readonly clock: Clock,
  ) {}

  async acquire(ctx: ResourceContext): Promise<void> {
    this.stop(ctx.group);
    const s: AnnounceSettings = { ...DEFAULT_ANNOUNCE, ...(ctx.spec?.announce ?? {}) };
    const ac = new AbortController();
    this.running.set(ctx.group, ac);
    const signal = AbortSignal.any([ac.signal, ctx.signal]);
    const sendAll = (n: number) =>
      Promise.all(
        ctx.vips.map((v) =>
          this.announcer.send(v, n, signal).catch((err) => ctx.log.warn({ err, vip: v.address }, 'announce failed')),
        ),
      );
    // The first burst is not awaited: the address already works, and neighbours learn it as packets arrive.
    void (async () => {
      await sendAll(s.burst);
      const end = this.clock.mono() + s.repeatForMs;
      while (!signal.aborted && ctx.isCurrent() && this.clock.mono() + s.repeatIntervalMs <= end) {
        await this.clock.sleep(s.repeatIntervalMs, signal);
        if (signal.aborted || !ctx.isCurrent()) break;
        await sendAll(1);
      }
      if (this.running.get(ctx.group) === ac) this.running.delete(ctx.group);
    })();
  }

  async release(ctx: ResourceContext): Promise<void> {
    this.stop(ctx.group);
  }

  stop(group: string): void {
    this.running.get(group)?.abort();
    this.running.delete(group);
  }
}
