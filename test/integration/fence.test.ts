// The fast fence's kernel side (node-agent/native/fence.c, node-agent/fence/ruleset.ts) against the real kernel:
// two namespaces joined by a veth pair, the helper's side "a" (198.18.251.1) with a VIP and a neighbour "b" (.2)
// that asks for it with arping. Shows that an element's timeout closes the fence on time (checked at lookup), that
// a late request sets nothing, and that deleting closes it at once. Needs root, nft and `npm run build`.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { realExec } from '../../common/exec.js';
import { FENCE_SLACK_MS } from '../../common/fence.js';
import { silentLogger } from '../../common/log.js';
import {
  DATAPLANE,
  Dataplane,
  DataplaneError,
  DeadlineExpiredError,
  type HelperProcess,
} from '../../node-agent/dataplane.js';
import { FENCE_TABLE, fenceRuleset } from '../../node-agent/fence/ruleset.js';
import { requireRoot } from '../../hack/testbed/index.js';
import { inNs, netnsPair, removePair } from './netns-pair.js';

jest.setTimeout(60_000);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist', 'node-agent', DATAPLANE);
const A = `vwfn${process.pid}a`;
const B = `vwfn${process.pid}b`;
const VIP = '198.18.251.100';

const mono = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Whether one ARP request from b for the VIP is answered within `waitS`. */
async function answered(waitS = 0.05): Promise<boolean> {
  const r = await realExec(['ip', 'netns', 'exec', B, 'arping', '-c', '1', '-w', String(waitS), '-i', 'fn1', VIP], {
    okCodes: [0, 1],
  });
  return r.exitCode === 0;
}

let dp: Dataplane;

beforeAll(async () => {
  requireRoot('test/integration/fence.test.ts');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build`);
  await netnsPair({ a: A, b: B, devA: 'fn0', devB: 'fn1', net: 251 });
  await inNs(A, ['ip', 'addr', 'add', `${VIP}/24`, 'dev', 'fn0', 'valid_lft', '60', 'preferred_lft', '60']);
  await inNs(A, ['nft', '-f', '-'], fenceRuleset());
  dp = helper();
});

/** A data-path helper in namespace a; `sendDelayUs` makes each of its netlink sends that much slower (fence.c). */
function helper(sendDelayUs?: number): Dataplane {
  const env = { ...process.env, ...(sendDelayUs ? { VW_FENCE_TEST_SEND_DELAY_US: String(sendDelayUs) } : {}) };
  const spawnHelper = () =>
    spawn('ip', ['netns', 'exec', A, BIN, String(process.pid)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env,
    }) as HelperProcess;
  return new Dataplane({ spawn: spawnHelper, log: silentLogger(), restartDelayMs: 0 });
}

afterAll(async () => {
  dp?.close();
  await removePair(A, B);
});

describe('the fast fence in a namespace of its own', () => {
  test('an ungated VIP is answered; a late request sets nothing', async () => {
    expect(await answered()).toBe(true);
    await expect(dp.fenceSet(FENCE_TABLE, [VIP], { expiresMs: mono() + 5000, deadlineMs: mono() - 1 })).rejects.toThrow(
      DeadlineExpiredError,
    );
    const sets = await inNs(A, ['nft', 'list', 'table', 'arp', FENCE_TABLE]);
    expect(sets.stdout).not.toContain(VIP);
    expect(await answered()).toBe(true);
  });

  test('a live element keeps ARP answered; after its end it is not, never later than the slack', async () => {
    const set = mono();
    const expiresMs = set + 600;
    const r = await dp.fenceSet(FENCE_TABLE, [VIP], { expiresMs, deadlineMs: set + 100 });
    expect(r.timeoutMs).toBeLessThanOrEqual(600);
    expect(r.ackedAtMs - r.checkedAtMs).toBeLessThan(20);
    expect(await answered()).toBe(true);
    // Ask every few ms around the end: the last answer must come before expiresMs + slack.
    let lastAnswer = 0;
    let firstSilence = 0;
    while (mono() < expiresMs + 300) {
      const t = mono();
      if (await answered(0.01)) lastAnswer = t;
      else if (!firstSilence && t > expiresMs - 50) firstSilence = t;
    }
    const late = lastAnswer - expiresMs;
    console.log(
      `fence: last ARP answer ${Math.round(late)} ms after the element's end; first silence at ${Math.round(firstSilence - expiresMs)} ms`,
    );
    expect(late).toBeLessThan(FENCE_SLACK_MS);
    expect(await answered()).toBe(false);
    // The address is still there: the fence, not the lifetime, closed it.
    const addr = await inNs(A, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'fn0']);
    expect(addr.stdout).toContain(`${VIP}/24`);
  });

  test('every send slow (30 ms, over the 20 ms the bound allows): set again shorter, open, ending within the bound', async () => {
    // A loaded machine: the kernel's start stamp may lie anywhere in the 30 ms, so the first timeout could outlive
    // the asked end by 30 ms. Before, the retry was as slow and the helper closed the fence (ETIME): the VIP went
    // dark for a round although the proof covered it.
    const slow = helper(30_000);
    try {
      const set = mono();
      const expiresMs = set + 5000;
      const r = await slow.fenceSet(FENCE_TABLE, [VIP], { expiresMs, deadlineMs: set + 200 });
      expect(r.ackedAtMs - r.checkedAtMs).toBeGreaterThanOrEqual(30);
      // The element ends by its ack + its timeout at the latest: within the helper's 20 ms of the asked end.
      expect(r.ackedAtMs + r.timeoutMs).toBeLessThanOrEqual(expiresMs + 20);
      expect(await answered()).toBe(true);
    } finally {
      slow.close();
    }
  });

  test('renewed every 50 ms with a 150 ms window, the element never runs out between renewals', async () => {
    // Fails without NFTA_SET_ELEM_EXPIRATION in the helper's NEWSETELEM: the kernel updates an existing element only
    // when its timeout (in jiffies) changed or an expiration is given, so a renewal to the same timeout left the
    // element to run out at its first end, and it was absent until a later renewal created it anew (the bench's
    // sampler saw the gate close 3-4 times a second; dumps found it absent in ~18 % of reads).
    let stop = false;
    let renewals = 0;
    const renew = (async () => {
      for (let i = 0; i < 100 && !stop; i++) {
        const t = mono();
        await dp.fenceSet(FENCE_TABLE, [VIP], { expiresMs: t + 150, deadlineMs: t + 50 });
        renewals++;
        await new Promise((r) => setTimeout(r, 50 - (mono() - t)));
      }
    })();
    let reads = 0;
    let absent = 0;
    try {
      await new Promise((r) => setTimeout(r, 100));
      for (const end = mono() + 2500; mono() < end && reads < 400; reads++) {
        const r = await inNs(A, ['nft', 'list', 'set', 'inet', FENCE_TABLE, 'live4']);
        if (!r.stdout.includes(VIP)) absent++;
      }
    } finally {
      stop = true;
      await renew;
    }
    console.log(`fence renewed ${renewals} times: live element absent in ${absent} of ${reads} reads`);
    expect(reads).toBeGreaterThan(20);
    expect(absent).toBe(0);
  });

  test('renewal reopens it; deletion closes the live element and removes the gate', async () => {
    await dp.fenceSet(FENCE_TABLE, [VIP], { expiresMs: mono() + 5000, deadlineMs: mono() + 100 });
    expect(await answered()).toBe(true);
    await dp.fenceDel(FENCE_TABLE, [VIP]);
    const sets = await inNs(A, ['nft', 'list', 'table', 'arp', FENCE_TABLE]);
    expect(sets.stdout).not.toContain(VIP);
    expect(await answered()).toBe(true); // ungated again (the agent deletes only after the address is gone)
    await dp.fenceDel(FENCE_TABLE, [VIP]); // absent: fine
  });

  test('another process removing a gate or the rules: the fenced address goes at once, and comes back only with its gate', async () => {
    // `nft flush ruleset` (Debian's /etc/nftables.conf starts with it) would leave the address ungated while the
    // controller waits only the fence's overhang: the helper watches the table (fencewatch.c) and fails closed.
    const ref = { address: VIP, prefix: 24, family: 4 as const, iface: 'fn0' };
    const present = async () =>
      (await inNs(A, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'fn0'])).stdout.includes(`${VIP}/24`);
    const goneWithin = async (ms: number) => {
      const t0 = mono();
      for (let i = 0; i < 200 && mono() - t0 < ms; i++) {
        if (!(await present())) return Math.round(mono() - t0);
        await new Promise((r) => setTimeout(r, 5));
      }
      return undefined;
    };
    const open = () => dp.fenceSet(FENCE_TABLE, [VIP], { expiresMs: mono() + 5000, deadlineMs: mono() + 100 });
    const add = () => dp.addAddress(ref, { validLft: 60, deadlineMs: mono() + 100 });
    await open();
    await add();
    // The agent's own load (chains flushed and filled in one transaction) is no breach.
    await inNs(A, ['nft', '-f', '-'], fenceRuleset());
    await new Promise((r) => setTimeout(r, 200));
    expect(await present()).toBe(true);
    expect(await answered()).toBe(true);

    // A gate deleted by someone else: that VIP's address goes; no add until a fence set put the gate back.
    await inNs(A, ['nft', 'delete', 'element', 'arp', FENCE_TABLE, 'gated4', `{ ${VIP} }`]);
    const afterGate = await goneWithin(1000);
    expect(afterGate).toBeDefined();
    await expect(add()).rejects.toThrow(DataplaneError);
    expect(await present()).toBe(false);
    await open();
    await add();
    expect(await present()).toBe(true);

    // The whole ruleset flushed: the address goes; fence set answers ENOENT until the table is loaded again.
    await inNs(A, ['nft', 'flush', 'ruleset']);
    const afterFlush = await goneWithin(1000);
    console.log(`fence watch: address deleted ${afterGate} ms after a gate went, ${afterFlush} ms after a flush`);
    expect(afterFlush).toBeDefined();
    await expect(open()).rejects.toMatchObject({ errno: 2 });
    await expect(add()).rejects.toThrow(DataplaneError);
    expect(await answered()).toBe(false);
    await inNs(A, ['nft', '-f', '-'], fenceRuleset());
    await open();
    await add();
    expect(await present()).toBe(true);
    expect(await answered()).toBe(true);
  });
});
