// Where the etcd binaries come from: hack/etcd/build.sh builds them once per pinned version into a shared cache and
// prints KEY=VALUE lines. VIPWARDEN_ETCD_BIN_DIR (a directory with etcd and etcdctl) skips the build.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface EtcdBinaries {
  version: string;
  etcd: string;
  etcdctl: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** hack/etcd (ts) or dist/hack/etcd (js). */
const REPO = [resolve(here, '..', '..'), resolve(here, '..', '..', '..')].find((d) =>
  existsSync(join(d, 'hack', 'etcd', 'build.sh')),
);

let cached: EtcdBinaries | undefined;

export function parseBuildOutput(stdout: string): EtcdBinaries {
  const kv = Object.fromEntries(
    stdout
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
  if (!kv.ETCD || !kv.ETCDCTL || !kv.ETCD_VERSION)
    throw new Error(`hack/etcd/build.sh printed no ETCD lines:\n${stdout}`);
  return { version: kv.ETCD_VERSION, etcd: kv.ETCD, etcdctl: kv.ETCDCTL };
}

/** The etcd and etcdctl to run; builds them on first use (minutes), a no-op when cached. */
export function etcdBinaries(): EtcdBinaries {
  if (cached) return cached;
  const dir = process.env.VIPWARDEN_ETCD_BIN_DIR;
  if (dir) {
    cached = { version: 'from VIPWARDEN_ETCD_BIN_DIR', etcd: join(dir, 'etcd'), etcdctl: join(dir, 'etcdctl') };
    return cached;
  }
  if (!REPO) throw new Error(`cannot find hack/etcd/build.sh above ${here}`);
  let out: string;
  try {
    out = execFileSync('bash', [join(REPO, 'hack', 'etcd', 'build.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 30 * 60_000,
    });
  } catch (err) {
    throw new Error(`hack/etcd/build.sh failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  cached = parseBuildOutput(out);
  return cached;
}
