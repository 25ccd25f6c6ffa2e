// Names and paths of every resource the testbed creates. Everything carries our prefix so that
// `cleanup` can find what a crashed run left behind, and nothing else.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Lock and claim files: one claim per testbed instance K. */
export const STATE_DIR = '/run/vipwarden-testbed';
/** etcd data dirs live on tmpfs. */
export const ETCD_DIR_PREFIX = '/dev/shm/vipwarden-etcd-';
/** Per-testbed working dirs (logs, configs, pid files). */
export const TESTBED_DIR_PREFIX = join(tmpdir(), 'vipwarden-tb-');

/** Range of the third octet K for 198.18.K.0/24. */
export const K_MIN = 16;
export const K_MAX = 254;
export const MAX_NODES = 40;

export const bridgeName = (k: number): string => `vwbr${k}`;
export const nodeNetns = (k: number, i: number): string => `vw${k}-node${i}`;
export const clientNetns = (k: number): string => `vw${k}-client`;
export const nodeHostVeth = (k: number, i: number): string => `vw${k}n${i}`;
export const clientHostVeth = (k: number): string => `vw${k}c`;
export const claimFile = (k: number): string => join(STATE_DIR, `${k}.json`);
export const ALLOC_LOCK = join(STATE_DIR, 'alloc.lock');

export const NETNS_OURS = /^vw(\d{1,3})-(node\d{1,3}|client)$/;
const LINK_OURS = /^(?:vwbr(\d{1,3})|vw(\d{1,3})(?:n\d{1,3}|c))$/;

/** K of one of our links (bridge or host-side veth), or undefined. */
export function linkK(name: string): number | undefined {
  const m = LINK_OURS.exec(name);
  const k = m ? Number(m[1] ?? m[2]) : NaN;
  return Number.isInteger(k) ? k : undefined;
}

/** K of one of our namespaces, or undefined. */
export function netnsK(name: string): number | undefined {
  const m = NETNS_OURS.exec(name);
  return m ? Number(m[1]) : undefined;
}

export const subnetV4 = (k: number): string => `198.18.${k}.0/24`;
export const hostV4 = (k: number, host: number): string => `198.18.${k}.${host}`;
/** 2001:2:0:K::/64, K written with the same digits (read as hex), so 198.18.42.x pairs with 2001:2:0:42::x. */
export const subnetV6 = (k: number): string => `2001:2:0:${k}::/64`;
export const hostV6 = (k: number, host: number): string => `2001:2:0:${k}::${host}`;

export function assertK(k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > 254) throw new Error(`invalid testbed id K: ${k}`);
}
