// Builds the dual-holder sampler (vipsampler/*.c, see vipsampler/main.c) on first use into the cache directory;
// rebuilt when any of its sources or headers changes (one hash over them all).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './util.js';

/** The directory of the sampler's sources, from the source tree or from next to the compiled testbed. */
function samplerSourceDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, 'vipsampler'),
    join(here, '..', '..', '..', 'hack', 'testbed', 'vipsampler'),
    join(process.cwd(), 'hack', 'testbed', 'vipsampler'),
  ];
  const found = candidates.find((c) => existsSync(join(c, 'main.c')));
  if (!found) throw new Error(`vipsampler/main.c not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function cacheDir(): string {
  return process.env['VIPWARDEN_CACHE'] || '/var/cache/vipwarden';
}

/** Compiles vipsampler/*.c into `${VIPWARDEN_CACHE:-/var/cache/vipwarden}/bin/vipsampler` unless up to date. */
export async function buildSampler(): Promise<string> {
  const dir = samplerSourceDir();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
    .sort();
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(join(dir, f)));
  const digest = hash.digest('hex');
  const binDir = join(cacheDir(), 'bin');
  const bin = join(binDir, 'vipsampler');
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
