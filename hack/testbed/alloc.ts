// Allocation of a testbed's K (its 198.18.K.0/24 and 2001:2:0:K::/64) under a lock file shared by every process on
// the host: a K is free when no claim, link, namespace or root-namespace address uses it.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { type Claim, claimIsLive, listClaims, listOurLinks, listOurNetns } from './cleanup.js';
import { ALLOC_LOCK, K_MAX, K_MIN, STATE_DIR, claimFile, linkK, netnsK } from './names.js';
import { isAlive, run, sleep } from './util.js';

const LockSchema = z.object({ pid: z.number().int() });

async function withAllocLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(STATE_DIR, { recursive: true });
  const deadline = Date.now() + 15_000;
  for (let attempt = 0; attempt < 1000; attempt++) {
    try {
      const fd = openSync(ALLOC_LOCK, 'wx');
      writeFileSync(fd, JSON.stringify({ pid: process.pid }));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // Stale lock: owner dead, or held far longer than any allocation takes.
      try {
        const holder = LockSchema.safeParse(JSON.parse(readFileSync(ALLOC_LOCK, 'utf8')));
        const age = Date.now() - statSync(ALLOC_LOCK).mtimeMs;
        if ((holder.success && !isAlive(holder.data.pid)) || age > 30_000) rmSync(ALLOC_LOCK, { force: true });
      } catch {
        // vanished or half-written: retry
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${ALLOC_LOCK}`);
      await sleep(20 + Math.random() * 30);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(ALLOC_LOCK, { force: true });
  }
}

/** K values in use: claims (live or not yet cleaned), our links/namespaces, and any 198.18.K.x in the root ns. */
async function usedKs(): Promise<Set<number>> {
  const used = new Set<number>();
  for (const c of listClaims()) used.add(c.k);
  for (const n of await listOurNetns()) used.add(netnsK(n) as number);
  for (const l of await listOurLinks()) used.add(linkK(l) as number);
  const r = await run(['ip', '-j', 'addr', 'show'], { allowFailure: true });
  if (r.exitCode === 0 && r.stdout.trim()) {
    const links = z
      .array(z.object({ addr_info: z.array(z.object({ local: z.string().optional() })).optional() }))
      .parse(JSON.parse(r.stdout));
    for (const l of links) {
      for (const a of l.addr_info ?? []) {
        const m = /^198\.18\.(\d{1,3})\./.exec(a.local ?? '');
        if (m) used.add(Number(m[1]));
        const m6 = /^2001:2:0:([0-9a-f]{1,4}):/i.exec(a.local ?? '');
        if (m6 && /^\d+$/.test(m6[1] ?? '')) used.add(Number(m6[1]));
      }
    }
  }
  return used;
}

export async function allocate(mkClaim: (k: number) => Claim): Promise<number> {
  return withAllocLock(async () => {
    const used = await usedKs();
    for (let k = K_MIN; k <= K_MAX; k++) {
      if (used.has(k)) continue;
      const c = mkClaim(k);
      writeFileSync(claimFile(k), JSON.stringify(c, null, 2), { flag: 'wx' });
      return k;
    }
    const stale = listClaims().filter((c) => !claimIsLive(c)).length;
    throw new Error(`no free testbed subnet in 198.18.${K_MIN}-${K_MAX}.0/24 (${stale} stale claims: run cli cleanup)`);
  });
}

/** Testbeds this host knows of (from claim files). */
export function listTestbeds(): Claim[] {
  return listClaims();
}
