// The etcd server version check: the minimum release of each minor line whose lease semantics the fencing relies on.
import { connectEtcd, type EtcdConfig } from './etcd.js';
import type { Logger } from './log.js';

/**
 * The oldest etcd server of each minor line whose lease semantics the fencing relies on: etcd-io/etcd#15247 (an old
 * leader revoking leases the new leader kept alive; fixed in 3.4.31 and 3.5.13) and a keepalive racing a revocation
 * answered TTL > 0 (fixed in 3.4.38 and 3.5.23). Any 3.6 and later is fine; 3.3 and older are refused.
 */
export const ETCD_MINIMUM: Readonly<Record<string, string>> = { '3.4': '3.4.38', '3.5': '3.5.23', '3.6': '3.6.0' };

type Version = [number, number, number];

export function parseEtcdVersion(v: string): Version | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return 0;
}

/**
 * Why an etcd server of `version` may not be used, or undefined if it may. `minimum` (from the config) can only raise
 * the bar: the built-in minimum of the server's minor line applies as well.
 */
export function etcdVersionProblem(version: string, minimum?: string): string | undefined {
  const v = parseEtcdVersion(version);
  if (!v) return `cannot parse the etcd server version "${version}"`;
  const [maj, min] = v;
  const line = `${maj}.${min}`;
  let need: string | undefined = ETCD_MINIMUM[line];
  if (need === undefined) {
    // Below 3.4: refuse. A line newer than the table (3.7, 4.x): accept.
    if (compareVersions(v, [3, 4, 0]) < 0) need = ETCD_MINIMUM['3.4'];
  }
  const why = 'older etcd releases have lease bugs that can put a VIP on two nodes (etcd-io/etcd#15247 and later)';
  if (need !== undefined && compareVersions(v, parseEtcdVersion(need) as Version) < 0)
    return ETCD_MINIMUM[line]
      ? `etcd server ${version} is older than ${need}, the minimum for etcd ${line}; ${why}`
      : `etcd server ${version} is older than 3.4 (supported: 3.4.38+, 3.5.23+, 3.6+); ${why}`;
  if (minimum !== undefined) {
    const m = parseEtcdVersion(minimum);
    if (!m) return `cannot parse the configured minimum etcd version "${minimum}"`;
    if (compareVersions(v, m) < 0)
      return `etcd server ${version} is older than the configured minimum ${minimum} (etcd.minimumVersion)`;
  }
  return undefined;
}

export class EtcdVersionError extends Error {}

export interface EtcdVersionCheck {
  /** Raises the minimum (config etcd.minimumVersion). */
  minimumVersion?: string;
  /** Start anyway on an old server, with a warning (config etcd.allowUnsupportedVersion or --allow-unsupported-etcd). */
  allowUnsupportedVersion?: boolean;
  /** Retry period while no endpoint answers; default 500 ms. */
  retryMs?: number;
  signal?: AbortSignal;
}

/**
 * Asks every endpoint for its server version (Maintenance.Status) and refuses, with an EtcdVersionError, a server
 * older than the minimum unless the override is set (then it logs a warning). Waits until at least one endpoint
 * answers; endpoints that do not answer are logged and not waited for (a member that is down now is checked by the
 * next start). Returns the versions seen, by endpoint.
 */
export async function checkEtcdVersion(
  cfg: EtcdConfig,
  log: Logger,
  check: EtcdVersionCheck = {},
): Promise<Record<string, string>> {
  for (let attempt = 0; ; attempt++) {
    const seen: Record<string, string> = {};
    const failed: Record<string, string> = {};
    await Promise.all(
      cfg.endpoints.map(async (ep) => {
        const c = connectEtcd({ ...cfg, endpoints: [ep] });
        try {
          seen[ep] = (await c.maintenance.status()).version;
        } catch (err) {
          failed[ep] = err instanceof Error ? err.message : String(err);
        } finally {
          c.close();
        }
      }),
    );
    if (Object.keys(seen).length > 0) {
      if (Object.keys(failed).length > 0)
        log.warn({ failed }, 'etcd version: some endpoints did not answer; checked the others');
      const problems = Object.entries(seen)
        .map(([ep, v]) => [ep, etcdVersionProblem(v, check.minimumVersion)] as const)
        .filter((x): x is readonly [string, string] => x[1] !== undefined);
      if (problems.length === 0) {
        log.info({ versions: seen }, 'etcd server version checked');
        return seen;
      }
      const text = problems.map(([ep, p]) => `${ep}: ${p}`).join('; ');
      if (check.allowUnsupportedVersion) {
        log.warn(
          { versions: seen, problems: Object.fromEntries(problems) },
          'UNSUPPORTED ETCD VERSION: starting anyway because the version check is overridden; a VIP may end up on two nodes',
        );
        return seen;
      }
      throw new EtcdVersionError(
        `refusing to start: ${text}. Upgrade etcd, or override with etcd.allowUnsupportedVersion: true (or --allow-unsupported-etcd) at your own risk`,
      );
    }
    if (attempt === 0 || attempt % 20 === 0) log.warn({ failed }, 'etcd version: no endpoint answered yet; retrying');
    if (check.signal?.aborted) throw new Error('etcd version check aborted');
    await new Promise((r) => setTimeout(r, check.retryMs ?? 500));
  }
}
