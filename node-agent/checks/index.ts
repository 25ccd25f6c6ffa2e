// The check registry: one function per check type.
import type { CheckTypes } from '../../crds/failovergroup.js';
import { httpCheck } from './http.js';
import { processCheck } from './process.js';
import { scriptCheck } from './script.js';
import { tcpCheck } from './tcp.js';
import type { CheckFn } from './types.js';

/**
 * A check whose module (and its driver) loads on first use: an agent without such a check never loads it. `load`
 * is called before the first attempt (GroupHealth), so that the load does not count against the check's timeout.
 */
function lazyCheck(load: () => Promise<CheckFn>): CheckFn {
  let loaded: Promise<CheckFn> | undefined;
  const once = () => (loaded ??= load());
  const fn: CheckFn = async (spec, deps, signal) => (await once())(spec, deps, signal);
  fn.load = once;
  return fn;
}

export const checks: Record<(typeof CheckTypes)[number], CheckFn> = {
  http: httpCheck,
  tcp: tcpCheck,
  process: processCheck,
  // mysql2 holds ~15 MiB resident once loaded.
  mysql: lazyCheck(async () => (await import('./mysql.js')).mysqlCheck),
  script: scriptCheck,
};
export type { CheckFn, CheckOutcome, CheckDeps } from './types.js';
