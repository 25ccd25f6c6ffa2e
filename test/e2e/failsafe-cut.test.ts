// Failsafe when only some nodes lose etcd (issue 12, docs/design.md "Failsafe (arbiter loss)" rules 2 and 6): three
// agents with the peer channel, one etcd, node1 holding a failsafe group. A node is cut from etcd by iptables in its
// own namespace (hack/testbed/etcd-faults.ts); the LAN stays up, so the peers still hear node1's promise requests.
//
// - node1 alone cut: node2 and node3 reach etcd and refuse to promise (the controller may assign to them), so node1
//   steps down within its keepalive fence, and node2 takes over only after that (0 ms dual). Meanwhile an attacker on
//   the LAN sends node1 forged "granted" answers: they are rejected and counted, and change nothing.
// - node1 and node2 cut, node3 reaches etcd: node2 may promise, node3 refuses, one refusal ends the keep: node1 steps
//   down and node3 takes over.
// Both hold on main too (a failsafe group behaves as release before the wiring); with the wiring they show that the
// keep does not outlive a refusal. No dual holder at any time: the fixture checks that at the end.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { expect, jest, test } from '@jest/globals';
import type { Cluster } from '../../hack/testbed/cluster.js';
import { cutFromEtcd, monoMs, PEER_PORT, restoreEtcd, sleep, type Sampler } from '../../hack/testbed/index.js';
import { newNonce, PeerKey, seal, type Envelope } from '../../node-agent/peer/envelope.js';
import { useE2eCluster } from '../harness/e2e.js';
import { addedAt, holdersSince, lostAt, placeFailsafeWeb, STEP_DOWN_MS, waitRegistered } from './failsafe-common.js';

jest.setTimeout(400_000);

let c: Cluster;
let sampler: Sampler;
let vip: string;
let sock: Socket | undefined;

useE2eCluster(
  {
    name: 'fscut',
    nodes: 3,
    peer: true,
    agentFor: (node) => ({ metrics: { listen: `${c?.tb.node(node).ip ?? '127.0.0.1'}:9641` } }),
    start: false,
  },
  async (f) => {
    ({ c, sampler } = f);
    vip = await placeFailsafeWeb(f);
    f.onTeardown(async () => sock?.close());
  },
);

async function rejected(node: string, reason: string): Promise<number> {
  const url = `http://${c.tb.node(node).ip}:9641/metrics`;
  const text = await (await fetch(url, { signal: AbortSignal.timeout(3000) })).text();
  const m = new RegExp(`^vipwarden_peer_rejected_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Cuts `nodes` from etcd until `until` resolves; the cut is undone whatever happens. */
async function cutWhile<T>(nodes: string[], until: () => Promise<T>): Promise<T> {
  try {
    for (const n of nodes) await cutFromEtcd(c.tb, c.etcd, n);
    return await until();
  } finally {
    for (const n of nodes) await restoreEtcd(c.tb, c.etcd, n);
  }
}

/** node1 gave the VIP up within the fence after `tCut`, and `to` added it only after that. */
function steppedDownFirst(tCut: number, to: string): { downMs: number; gapMs: number } {
  const gone = lostAt(sampler, vip, 'node1', tCut);
  const added = addedAt(sampler, vip, to, tCut);
  expect({ gone: gone !== undefined, added: added !== undefined }).toEqual({ gone: true, added: true });
  const r = { downMs: Math.round(gone! - tCut), gapMs: Math.round(added! - gone!) };
  console.log(`failsafe-cut: node1 stepped down ${r.downMs} ms after the cut, ${to} added ${r.gapMs} ms after that`);
  expect(r.downMs).toBeLessThan(STEP_DOWN_MS);
  expect(r.gapMs).toBeGreaterThanOrEqual(0);
  return r;
}

test('the holder alone cut from etcd, LAN up: it steps down before node2 takes over; forged grants change nothing', async () => {
  // The attacker: a datagram socket on the bridge, sending node1 "granted" answers from node2 and node3 under a
  // guessed key, as fast as a promise round would need them.
  const s = createSocket('udp4');
  sock = s;
  await new Promise<void>((r) => s.bind(0, c.tb.bridgeIp, () => r()));
  const guessed = PeerKey.fromSecret('guessed-peer-secret-'.repeat(3));
  const forged = (from: string): Buffer =>
    seal(guessed, {
      t: 'ans',
      from,
      to: 'node1',
      ts: Date.now(),
      nonce: newNonce(),
      re: newNonce(),
      body: { peer: from, granted: true, windowMs: 5000, requestId: newNonce() },
    } as Envelope);
  const badMacBefore = await rejected('node1', 'bad-mac');
  let attacking = true;
  const attack = (async () => {
    for (let i = 0; i < 2000 && attacking; i++) {
      for (const from of ['node2', 'node3']) s.send(forged(from), PEER_PORT, c.tb.node('node1').ip);
      await sleep(40);
    }
  })();

  const tCut = monoMs();
  try {
    await cutWhile(['node1'], () => sampler.waitForHolder(vip, 'node2', 30_000));
  } finally {
    attacking = false;
    await attack;
  }
  steppedDownFirst(tCut, 'node2');
  expect(holdersSince(sampler, vip, tCut)).toEqual(['node1', 'node2']);
  // The forged answers were seen and rejected (the rate limiter may count some of them instead: at least some).
  expect((await rejected('node1', 'bad-mac')) - badMacBefore).toBeGreaterThan(10);
  const log = readFileSync(c.agents.get('node1')!.stdoutLog!, 'utf8').split('\n');
  expect(log.some((l) => l.includes('"msg":"peer message rejected"') && l.includes('"reason":"bad-mac"'))).toBe(true);
  expect(log.filter((l) => l.includes('kept by promises'))).toEqual([]);

  // The cut healed: node1 has etcd again and gets the group back (failback auto).
  await sampler.waitForHolder(vip, 'node1', 60_000);
});

test('the holder and one peer cut from etcd, the other peer reaches it: the holder steps down', async () => {
  await sampler.waitForHolder(vip, 'node1', 60_000);
  await waitRegistered(c, ['node1', 'node2', 'node3']);
  const tCut = monoMs();
  // node3 within the ordinary wait, or, when the controller first gave the group to node2 (its lease still ran
  // when node1's ended), after node2's lease ended too and rule 5's maxKeep (120 s): node2 never acknowledged a
  // promise set, which the controller cannot tell from one it has not seen yet, so it waits (seen in CI).
  await cutWhile(['node1', 'node2'], () => sampler.waitForHolder(vip, 'node3', 170_000));
  steppedDownFirst(tCut, 'node3');
  // node2 had no etcd: it never added the VIP (and, having promised, would have been bound for W).
  expect(holdersSince(sampler, vip, tCut)).toEqual(['node1', 'node3']);
  // node3 reaches etcd: it never granted (with the wiring it refuses as reachesEtcd; before it, as notFailsafe).
  const log3 = readFileSync(c.agents.get('node3')!.stdoutLog!, 'utf8').split('\n');
  expect(log3.filter((l) => l.includes('"msg":"promise"') && l.includes('"granted":true'))).toEqual([]);
  await sampler.waitForHolder(vip, 'node1', 60_000);
});
