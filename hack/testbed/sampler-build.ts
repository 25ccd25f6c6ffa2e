// Builds the testbed's small C tools on first use into the cache directory: the dual-holder sampler
// (vipsampler/*.c, see vipsampler/main.c) and the outside ARP view (arpwatch/*.c, see arpwatch/main.c); each is
// rebuilt when any of its sources or headers changes (one hash over them all).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './util.js';

/** The directory of a tool's sources, from the source tree or from next to the compiled testbed. */
function toolSourceDir(sub: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, sub),
    join(here, '..', '..', '..', 'hack', 'testbed', sub),
    join(process.cwd(), 'hack', 'testbed', sub),
  ];
  const found = candidates.find((c) => existsSync(join(c, 'main.c')));
  if (!found) throw new Error(`${sub}/main.c not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function cacheDir(): string {
  return process.env['VIPWARDEN_CACHE'] || '/var/cache/vipwarden';
}

/** Compiles hack/testbed/<sub>/*.c into `${VIPWARDEN_CACHE:-/var/cache/vipwarden}/bin/<bin>` unless up to date. */
async function buildTool(sub: string, binName: string): Promise<string> {
  const dir = toolSourceDir(sub);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
    .sort();
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(join(dir, f)));
  const digest = hash.digest('hex');
  const binDir = join(cacheDir(), 'bin');
  const bin = join(binDir, binName);
  const stamp = `${bin}.sha256`;
  if (existsSync(bin) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === digest) return bin;
  mkdirSync(binDir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  const sources = files.filter((f) => f.endsWith('.c')).map((f) => join(dir, f));
  await run(['gcc', '-O2', '-Wall', '-Wextra', '-o', tmp, ...sources], { timeoutMs: 60_000 });
  renameSync(tmp, bin); // atomic: concurrent builders race harmlessly
  writeFileSync(stamp, digest + '\n');
  return bin;
}

/** The dual-holder sampler: every node namespace's addresses every few ms. */
export function buildSampler(): Promise<string> {
  return buildTool('vipsampler', 'vipsampler');
}

/** The outside ARP view: which MACs answer an ARP request for a VIP, every few ms. */
export function buildArpWatch(): Promise<string> {
  return buildTool('arpwatch', 'vwarpwatch');
}
