// What a throw-away etcd cluster (etcd.ts) is started with and what it offers.
import type { EtcdBinaries } from '../etcd/binaries.js';
import type { TlsFiles } from '../etcd/pki.js';

/**
 * The etcd timing vipwarden runs with unless told otherwise (docs/design.md, "etcd leader elections"): a leader
 * election must end within the 1 s address lifetime of the default 2 s node lease. etcd's own defaults (100 ms,
 * 1000 ms) leave the cluster leaderless for 1-2 s after its leader dies.
 */
export const ETCD_TIMING = { heartbeatMs: 50, electionMs: 300 } as const;

export interface StartEtcdOptions {
  members: 1 | 3;
  /** Peer and advertised client address; default 127.0.0.1. */
  host?: string;
  /** More addresses the client port listens on (same port as on host). */
  extraHosts?: string[];
  /** etcd --heartbeat-interval (ms); default ETCD_TIMING's (50; etcd's own is 100). */
  heartbeatMs?: number;
  /** etcd --election-timeout (ms); default ETCD_TIMING's (300; etcd's own is 1000). */
  electionMs?: number;
  /** Run the members inside this network namespace (host/extraHosts must exist there). */
  netns?: string;
  /** How long to wait for a healthy cluster; default 30 s. */
  startTimeoutMs?: number;
  /**
   * TLS with client certificates (etcd --client-cert-auth, and peer TLS between members), certificates made now by
   * openssl (hack/etcd/pki.ts). Default true: every tier runs the way production should.
   */
  tls?: boolean;
}

export interface EtcdClientConfig {
  endpoints: string[];
  tls?: { ca: string; cert: string; key: string };
}

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  /** Client URL on `host`. */
  endpoint: string;
  /** etcd's /metrics over plain HTTP on `host` (no client certificate needed). */
  metricsUrl: string;
  readonly pid: number | undefined;
  readonly running: boolean;
}

export interface EtcdCluster {
  /** Client URLs on `host`, one per member. */
  readonly endpoints: string[];
  /** Client URLs on another of the listen addresses (host or one of extraHosts). */
  endpointsFor(host: string): string[];
  /**
   * What a component needs to connect (the `etcd` section of agent.yaml/controller.yaml minus the prefix, and what
   * connectEtcd takes): endpoints on `host` (default the cluster's host) and, with TLS, the CA and a client
   * certificate for `user` (default root).
   */
  clientConfig(opts?: { user?: string; host?: string }): EtcdClientConfig;
  readonly members: readonly EtcdMember[];
  /** Root dir on tmpfs holding every member's data dir and log. */
  readonly dir: string;
  /** The etcd and etcdctl this cluster runs (hack/etcd/build.sh), and their version. */
  readonly binaries: EtcdBinaries;
  /** The CA and the root client certificate, when the cluster runs TLS. */
  readonly tls: TlsFiles | undefined;
  /** etcdctl's flags for TLS as `user` (default root): --cacert, --cert, --key; empty without TLS. */
  etcdctlFlags(user?: string): string[];
  /** The environment the vipwarden CLI reads: VIPWARDEN_ETCD and, with TLS, VIPWARDEN_ETCD_CA/_CERT/_KEY. */
  cliEnv(opts?: { user?: string; host?: string }): Record<string, string>;
  /** The same as vipwarden CLI options: --etcd URLs and, with TLS, --etcd-ca, --etcd-cert, --etcd-key. */
  cliFlags(opts?: { user?: string; host?: string }): string[];
  /** Kills every member, removes the data. Idempotent. */
  stop(): Promise<void>;
  /** Kills member i (0-based), SIGKILL by default (SIGSTOP to freeze it). */
  kill(member: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member i again on its data (after kill); waits until it is healthy. */
  restart(member: number): Promise<void>;
  /** Runs `etcdctl endpoint health` on the given members (default all); true if all healthy. */
  healthy(members?: number[]): Promise<boolean>;
  /** Index of the member that is the raft leader now (asked of the running members), -1 if none answers so. */
  leader(): Promise<number>;
}
