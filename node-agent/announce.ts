// Announcing a VIP's new home: gratuitous ARP (IPv4) in request and reply forms, unsolicited neighbour
// advertisements (IPv6). A burst at once, then repeats for a while, stopped when the group is released.
import type { Exec } from '../common/exec.js';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { VipRef } from './addresses.js';
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

export class CommandAnnouncer implements Announcer {
  private warnedV6 = false;
  constructor(
    private readonly exec: Exec,
    private readonly log: Logger,
    private readonly sendNa?: (vip: VipRef, count: number) => Promise<void>,
    private readonly onSent?: (vip: VipRef, n: number) => void,
  ) {}

  async send(vip: VipRef, count: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    if (vip.family === 6) {
      if (this.sendNa) {
        await this.sendNa(vip, count);
        this.onSent?.(vip, count);
      } else if (!this.warnedV6) {
        this.warnedV6 = true;
        this.log.warn({ vip: vip.address }, 'no unsolicited neighbour advertisement sender configured for IPv6');
      }
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
          this.announcer
            .send(v, n, signal)
            .catch((err) => ctx.log.warn({ err: String(err), vip: v.address }, 'announce failed')),
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
