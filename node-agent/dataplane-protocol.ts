// The wire protocol of vipwarden-dataplane (node-agent/native/dataplane.c) as the client (dataplane.ts) speaks it:
// the helper process it talks to, the errors an answer can carry, deadlines in the helper's nanoseconds.
import type { Readable, Writable } from 'node:stream';
import { isInterfaceName, mustParseCidr } from '../common/ip.js';
import type { VipRef } from './addresses.js';

export const DATAPLANE = 'vipwarden-dataplane';

/** Calls `each` with every whole line (newline removed) that `stream` delivers, as text; a partial line waits. */
export function onLines(stream: Readable, each: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      each(line);
    }
  });
}

/** What the client needs of a child process (a ChildProcess, or a fake in tests). */
export interface HelperProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly pid?: number | undefined;
  kill(signal?: NodeJS.Signals): boolean;
  once(event: 'exit', fn: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', fn: (err: Error) => void): unknown;
}

export type SpawnHelper = () => HelperProcess;

/** The helper ran the request and the kernel refused it. */
export class DataplaneError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly detail: string,
  ) {
    super(`${DATAPLANE} ${op}: ${detail} (errno ${errno})`);
    this.name = 'DataplaneError';
  }
}

/** The deadline had passed when the helper was about to act: nothing acted. */
export class DeadlineExpiredError extends Error {
  constructor(
    readonly op: string,
    readonly lateNs: bigint,
  ) {
    super(`${DATAPLANE} ${op}: deadline passed ${lateNs / 1000n} us before it could act; not done`);
    this.name = 'DeadlineExpiredError';
  }
}

/** No answer (helper dead, restarting, timed out, closed): whether the request acted is unknown. */
export class DataplaneUnavailableError extends Error {
  constructor(
    readonly op: string,
    why: string,
  ) {
    super(`${DATAPLANE} ${op}: ${why}`);
    this.name = 'DataplaneUnavailableError';
  }
}

export interface AddResult {
  /** The address was not there before (false: its lifetimes were replaced). */
  created: boolean;
  /** CLOCK_MONOTONIC ms of the last deadline check, of the kernel's acknowledgement, of the announcement (if any). */
  checkedAtMs: number;
  ackedAtMs: number;
  announcedAtMs: number | undefined;
}

export const monoNow = () => Number(process.hrtime.bigint() / 1000n) / 1000;
export const FOREVER = 4294967295;

/** Milliseconds on the monotonic clock to the helper's nanoseconds; 0 means "no deadline". */
export function deadlineNs(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`invalid deadline ${ms}`);
  return BigInt(Math.floor(ms * 1e6)).toString();
}

export function nsToMs(text: string | undefined): number {
  return Number(BigInt(text ?? '0') / 1000n) / 1000;
}

export function checkRef(v: VipRef): void {
  const c = mustParseCidr(`${v.address}/${v.prefix}`);
  if (c.family !== v.family || !isInterfaceName(v.iface)) throw new Error(`invalid VIP ${JSON.stringify(v)}`);
}
