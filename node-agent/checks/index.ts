// The check registry: one function per check type.
import type { CheckTypes } from '../../crds/failovergroup.js';
import { httpCheck } from './http.js';
import { mysqlCheck } from './mysql.js';
import { processCheck } from './process.js';
import { scriptCheck } from './script.js';
import { tcpCheck } from './tcp.js';
import type { CheckFn } from './types.js';

export const checks: Record<(typeof CheckTypes)[number], CheckFn> = {
  http: httpCheck,
  tcp: tcpCheck,
  process: processCheck,
  mysql: mysqlCheck,
  script: scriptCheck,
};
export type { CheckFn, CheckOutcome, CheckDeps } from './types.js';
