// Two namespaces of a test's own joined by a veth pair (the data-path helper's tests): "a" with address .1 and ::1
// on devA, "b" with .2 and ::2 on devB, in 198.18.N.0/24 and 2001:2:0:N::/64. Needs root.
import { realExec } from '../../common/exec.js';

export const inNs = (ns: string, argv: string[], input?: string) =>
  realExec(['ip', 'netns', 'exec', ns, ...argv], input === undefined ? {} : { input });

export async function netnsPair(o: { a: string; b: string; devA: string; devB: string; net: number }): Promise<void> {
  await realExec(['ip', 'netns', 'add', o.a]);
  await realExec(['ip', 'netns', 'add', o.b]);
  await inNs(o.a, ['ip', 'link', 'add', o.devA, 'type', 'veth', 'peer', 'name', o.devB, 'netns', o.b]);
  for (const [ns, dev, n] of [
    [o.a, o.devA, 1],
    [o.b, o.devB, 2],
  ] as const) {
    await inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    await inNs(ns, ['ip', 'link', 'set', dev, 'up']);
    await inNs(ns, ['ip', 'addr', 'add', `198.18.${o.net}.${n}/24`, 'dev', dev]);
    await inNs(ns, ['ip', 'addr', 'add', `2001:2:0:${o.net}::${n}/64`, 'dev', dev, 'nodad']);
  }
}

/** Removes both namespaces (absent ones are fine). */
export async function removePair(...names: string[]): Promise<void> {
  for (const ns of names) await realExec(['ip', 'netns', 'del', ns], { okCodes: [1] }).catch(() => undefined);
}
