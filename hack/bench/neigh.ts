// The client's view of ARP: `ip monitor neigh` in the client namespace. The moment the client's neighbour entry
// for the VIP switches to the new holder's MAC is when the new holder's announcement (or an ARP answer) arrived.
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { monoMs, normalizeIp, type Testbed } from '../testbed/index.js';
import { withTimeout } from '../testbed/util.js';

export interface NeighEvent {
  /** CLOCK_MONOTONIC ms when `ip monitor` received the kernel's notification. */
  t: number;
  ip: string;
  lladdr?: string;
  state?: string;
  deleted: boolean;
}

export interface NeighMonitor {
  readonly events: readonly NeighEvent[];
  /** First event after `since` that maps `ip` to `mac`. */
  firstMapping(ip: string, mac: string, since: number): NeighEvent | undefined;
  stop(): Promise<void>;
}

/**
 * One line of `ip -ts monitor neigh` (pure): "[2026-11-22T03:09:14.240761] 198.18.16.100 dev eth0 lladdr .. STATE".
 * The bracketed time is local wall-clock time with microseconds, taken by `ip` when the kernel told it;
 * `wallMinusMono` (Date.now() - monoMs()) turns it into CLOCK_MONOTONIC ms. Without a timestamp, `fallbackT`.
 */
export function parseNeighLine(line: string, wallMinusMono: number, fallbackT: number): NeighEvent | undefined {
  let rest = line.trim();
  let t = fallbackT;
  const ts = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?\]\s*/.exec(rest);
  if (ts) {
    const wall = new Date(ts[1]!).getTime() + Number(`0.${ts[2] ?? '0'}`) * 1000;
    if (Number.isFinite(wall)) t = wall - wallMinusMono;
    rest = rest.slice(ts[0].length);
  }
  const m =
    /^(Deleted )?(\S+) dev \S+(?: lladdr ([0-9a-f:]+))?(?:.*?\b(REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|PERMANENT|NOARP))?/i.exec(
      rest,
    );
  if (!m || !m[2]) return undefined;
  let ip: string;
  try {
    ip = normalizeIp(m[2]);
  } catch {
    return undefined;
  }
  return {
    t,
    ip,
    deleted: m[1] !== undefined,
    ...(m[3] ? { lladdr: m[3].toLowerCase() } : {}),
    ...(m[4] ? { state: m[4] } : {}),
  };
}

export async function startNeighMonitor(tb: Testbed): Promise<NeighMonitor> {
  const proc = tb.spawn(tb.client, ['ip', '-ts', 'monitor', 'neigh'], { name: 'neigh-monitor', stdout: 'pipe' });
  const wallMinusMono = Date.now() - monoMs();
  const events: NeighEvent[] = [];
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (line) => {
    const e = parseNeighLine(line, wallMinusMono, monoMs());
    if (e) events.push(e);
  });
  return {
    events,
    firstMapping(ip, mac, since) {
      const a = normalizeIp(ip);
      const m = mac.toLowerCase();
      return events.find((e) => e.t >= since && e.ip === a && !e.deleted && e.lladdr === m);
    },
    async stop() {
      await proc.stop({ signal: 'SIGTERM', timeoutMs: 1000 });
      await withTimeout(new Promise<void>((r) => rl.once('close', () => r())), 300, undefined);
    },
  };
}

const LinkJson = z.array(z.object({ address: z.string() }));

/** MAC address of a node's eth0. */
export async function macOf(tb: Testbed, node: string): Promise<string> {
  const r = await tb.exec(node, ['ip', '-j', 'link', 'show', 'eth0']);
  const l = LinkJson.parse(JSON.parse(r.stdout));
  if (!l[0]) throw new Error(`no eth0 on ${node}`);
  return l[0].address.toLowerCase();
}
