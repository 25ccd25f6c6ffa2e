// The failsafe keeper over the in-memory peer channel, with fake time: a holder without a fresh keepalive keeps its
// addresses while every peer promises, steps down on one refusal, and a promise binds the peer that gave it.
import { describe, expect, test } from '@jest/globals';
import type { Clock } from '../../common/clock.js';
import { createLogger } from '../../common/log.js';
import { FailsafeKeeper, type HeldGroup } from './keeper.js';
import { DEFAULT_FAILSAFE_TIMING } from './rules.js';
import { MemoryPeerNetwork } from './transport.js';

const TTL_MS = 2000;
const WINDOW_MS = 500;
const T = DEFAULT_FAILSAFE_TIMING;

/** Fake time: tests move `t` by hand. */
function fakeClock(): Clock & { t: number } {
  const c = {
    t: 1_000_000,
    mono: () => c.t,
    wall: () => 1_700_000_000_000 + c.t,
    sleep: async (ms: number) => void (c.t += ms),
  };
  return c;
}
type FakeClock = ReturnType<typeof fakeClock>;

class FakeLease {
  lease: string | undefined = '7';
  validUntil = 0;
  lastAnsweredSentAt = -Infinity;
  constructor(private readonly clock: FakeClock) {}
  answer(): void {
    this.lastAnsweredSentAt = this.clock.t;
    this.validUntil = this.clock.t + TTL_MS;
  }
  isFresh(): boolean {
    return this.lease !== undefined && this.clock.t - this.lastAnsweredSentAt <= WINDOW_MS;
  }
}

function cluster(opts: { failsafe?: boolean; nodes?: string[] } = {}) {
  const clock = fakeClock();
  const net = new MemoryPeerNetwork();
  const names = opts.nodes ?? ['n0', 'n1', 'n2'];
  const log = createLogger({ name: 'test', level: 'silent' });
  const extended: { group: string; lifetime: number; at: number }[] = [];
  const untils: number[] = [];
  let fenceEnd = clock.t + 1000;
  const held: HeldGroup[] = [];
  const nodes = names.map((node) => {
    const lease = new FakeLease(clock);
    lease.answer();
    const k = new FailsafeKeeper({
      node,
      clock,
      lease,
      timing: T,
      transport: net.transport(node),
      log,
      held: () => (node === 'n0' ? held.map((h) => ({ ...h, fenceEnd })) : []),
      peerAddress: (n) => (names.includes(n) ? { node: n, address: '198.18.0.1', port: 1 } : undefined),
      extend: async (group, lifetime, deadline, until) => {
        if (clock.t > deadline) return false;
        untils.push(until);
        extended.push({ group, lifetime, at: clock.t });
        fenceEnd = clock.t + lifetime * 1000;
        return true;
      },
      holdsGroup: () => false,
      groupFailsafe: () => opts.failsafe ?? true,
    });
    k.serve();
    return { node, lease, k };
  });
  held.push({ group: 'web', epoch: 5, promiseSet: names, failsafe: opts.failsafe ?? true, fenceEnd });
  const etcdDown = () => {
    // Every lease's last answer stays where it was; time passes past the fresh window.
    clock.t += WINDOW_MS + 1;
  };
  return { clock, net, nodes, extended, untils, etcdDown, holder: nodes[0]!, fence: () => fenceEnd };
}

describe('FailsafeKeeper', () => {
  test('etcd down for everyone: every peer promises, the holder extends by whole seconds within the bound', async () => {
    const c = cluster();
    c.etcdDown();
    await c.holder.k.tick();
    expect(c.extended).toEqual([{ group: 'web', lifetime: 3, at: c.clock.t }]);
    // The bound a fast-fence element is opened to: past the address's lifetime and the kernel's lateness (the
    // element outlives the address it gates), and inside the promises' window from the requests' send time.
    const until = c.untils[0]!;
    expect(until).toBeGreaterThanOrEqual(c.clock.t + 3000 + T.kernelSlackMs);
    expect(until).toBeLessThanOrEqual(c.clock.t + T.windowMs - T.marginMs);
    expect(c.net.sent.map((s) => s.to).sort()).toEqual(['n1', 'n2']);
    // Both peers are bound for W from their grant, whatever an assignment says later.
    expect(c.nodes[1]!.k.mayAdd('web')).toBe(false);
    c.clock.t += T.windowMs;
    expect(c.nodes[1]!.k.mayAdd('web')).toBe(true);
  });

  test('a peer that reaches etcd refuses; once the lease no longer covers, the keep ends', async () => {
    const c = cluster();
    c.etcdDown();
    await c.holder.k.tick(); // kept: lifetime 3 s
    c.clock.t += TTL_MS; // the holder's lease proves nothing any more; its address is still there
    c.nodes[2]!.lease.answer(); // n2 hears from etcd again
    await c.holder.k.tick();
    expect(c.extended).toHaveLength(1);
    expect(c.holder.k.holder.endReason()).toMatch(/refused by n2: reachesEtcd/);
    expect(c.nodes[1]!.k.mayAdd('web')).toBe(false); // n1 did promise, and is bound
  });

  test('a silent peer (cut off, or no address) means no keep', async () => {
    const c = cluster();
    c.net.setCut('n2', true);
    c.etcdDown();
    await c.holder.k.tick();
    expect(c.extended).toEqual([]);
  });

  test('a request whose authenticated sender is not the holder it names is refused and binds nobody', () => {
    const c = cluster();
    c.etcdDown();
    const a = c.nodes[1]!.k.answer(
      { holder: 'n0', holderLease: '7', groups: [{ group: 'web', epoch: 5 }], requestId: 'x', sentAt: 0 },
      'n2',
    );
    expect(a).toMatchObject({ granted: false, reason: 'other' });
    expect(c.nodes[1]!.k.mayAdd('web')).toBe(true);
  });

  test('inactive unless failsafe: arbiterLoss release sends nothing and extends nothing', async () => {
    const c = cluster({ failsafe: false });
    c.etcdDown();
    await c.holder.k.tick();
    expect(c.net.sent).toEqual([]);
    expect(c.extended).toEqual([]);
  });

  test('inactive with a fresh keepalive answer', async () => {
    const c = cluster();
    await c.holder.k.tick();
    expect(c.net.sent).toEqual([]);
  });
});
