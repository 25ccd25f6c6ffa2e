// Unsolicited neighbour advertisements for IPv6 VIPs on the command path, through the small C helper
// vipwarden-ndsend (ndsend.c); when the data-path helper is built (node-agent/dataplane.ts), it sends them instead
// and the sender made here only says that NAs are wanted (agent.yaml `announce.ndsend` not "off").
// Why a helper at all: Debian 12 has no ndsend, and the kernel only advertises a new address by itself with
// ndisc_notify set, once.
// Where the helper comes from, in order: agent.yaml `announce.ndsend` (a path, or "off"); a vipwarden-ndsend next
// to the agent's own code; else it is compiled from ndsend.c with gcc into the cache directory at first use
// (${VIPWARDEN_CACHE:-/var/cache/vipwarden}/bin), as the testbed's sampler is.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Exec } from '../common/exec.js';
import { isInterfaceName, mustParseCidr } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import type { VipRef } from './addresses.js';

export const NDSEND = 'vipwarden-ndsend';

/** Milliseconds between the advertisements of one call. */
const SPACING_MS = 20;

export function ndsendArgv(bin: string, vip: VipRef, count: number): string[] {
  if (!bin.startsWith('/')) throw new Error(`${NDSEND} must be an absolute path: ${bin}`);
  if (vip.family !== 6) throw new Error(`not an IPv6 VIP: ${vip.address}`);
  mustParseCidr(`${vip.address}/${vip.prefix}`);
  if (!isInterfaceName(vip.iface)) throw new Error(`invalid interface name ${JSON.stringify(vip.iface)}`);
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new Error(`invalid count ${count}`);
  return [bin, '-i', vip.iface, '-c', String(count), '-w', String(SPACING_MS), vip.address];
}

/** The `sendNa` that CommandAnnouncer takes. */
export function naSender(exec: Exec, bin: string): (vip: VipRef, count: number) => Promise<void> {
  return async (vip, count) => {
    await exec(ndsendArgv(bin, vip, count), { timeoutMs: 2000 + count * SPACING_MS });
  };
}

const here = dirname(fileURLToPath(import.meta.url));

function cacheDir(): string {
  return process.env['VIPWARDEN_CACHE'] || '/var/cache/vipwarden';
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** ndsend.c, from the source tree or from next to the compiled agent (dist/node-agent -> node-agent). */
async function sourcePath(): Promise<string | undefined> {
  const candidates = [join(here, 'ndsend.c'), join(here, '..', '..', 'node-agent', 'ndsend.c')];
  for (const c of candidates)
    if (
      await access(c).then(
        () => true,
        () => false,
      )
    )
      return c;
  return undefined;
}

/** Compiles ndsend.c (and native/nd.h) into the cache directory unless an up-to-date build is there. */
export async function buildNdsend(exec: Exec, opts: { cacheDir?: string } = {}): Promise<string> {
  const src = await sourcePath();
  if (!src) throw new Error('ndsend.c not found next to the agent');
  // The hash covers the header ndsend.c includes, so that a change to the shared packet rebuilds it too.
  const hash = createHash('sha256');
  for (const file of [src, join(dirname(src), 'native', 'nd.h')]) hash.update(await readFile(file));
  const digest = hash.digest('hex');
  const binDir = join(opts.cacheDir ?? cacheDir(), 'bin');
  const bin = join(binDir, NDSEND);
  const stamp = `${bin}.sha256`;
  const built = await readFile(stamp, 'utf8').then(
    (s) => s.trim(),
    () => '',
  );
  if (built === digest && (await executable(bin))) return bin;
  await mkdir(binDir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  await exec(['gcc', '-O2', '-Wall', '-Wextra', '-o', tmp, src], { timeoutMs: 60_000 });
  await rename(tmp, bin); // atomic: agents building at the same time race harmlessly
  await writeFile(stamp, `${digest}\n`);
  return bin;
}

/**
 * Finds (or builds) the helper. Returns undefined when IPv6 VIPs are not to be announced, with the reason logged;
 * throws when agent.yaml names a helper that is not there (a configuration error, not something to guess around).
 */
export async function locateNdsend(
  exec: Exec,
  configured: string | undefined,
  log: Logger,
): Promise<string | undefined> {
  if (configured === 'off') return undefined;
  if (configured !== undefined) {
    if (!(await executable(configured))) throw new Error(`announce.ndsend: ${configured} is not an executable file`);
    return configured;
  }
  const beside = join(here, NDSEND);
  if (await executable(beside)) return beside;
  try {
    return await buildNdsend(exec);
  } catch (err) {
    log.warn({ err }, `no ${NDSEND} (set announce.ndsend, or install gcc): IPv6 VIPs will not be announced`);
    return undefined;
  }
}
