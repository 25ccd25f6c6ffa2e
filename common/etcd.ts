// etcd access shared by controller, agent and CLI: the connection settings and the client. The server version check
// (etcd-version.ts), the Mirror of a key prefix (etcd-mirror.ts) and the member failover (etcd-failover.ts) live
// next to it and are re-exported here.
import { readFileSync } from 'node:fs';
import { ExponentialBackoff, noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { z } from 'zod';
import { installFailover } from './etcd-failover.js';

const AbsPath = z.string().startsWith('/', 'must be an absolute path');

/** TLS to etcd: the CA that signed the server certificates, and a client certificate and key (client-cert-auth). */
export const EtcdTlsSchema = z
  .object({
    ca: AbsPath.describe('PEM file of the CA that signed the etcd server certificates'),
    cert: AbsPath.optional().describe('PEM client certificate (etcd --client-cert-auth); needs key'),
    key: AbsPath.optional().describe('PEM private key of the client certificate; needs cert'),
  })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together');

/** etcd user and password, the alternative to a client certificate: a file holding one line `user:password`. */
export const EtcdAuthSchema = z
  .object({ file: AbsPath.describe('file holding one line "user:password" (mode 0600)') })
  .strict();

/**
 * The connection fields of the `etcd` section shared by agent.yaml and controller.yaml (endpoints and prefix are
 * declared next to them in each schema).
 */
export const etcdConnectionFields = {
  tls: EtcdTlsSchema.optional(),
  auth: EtcdAuthSchema.optional(),
  /** Raises the minimum etcd server version (never lowers it below the built-in one). */
  minimumVersion: z
    .string()
    .regex(/^\d+\.\d+\.\d+$/, 'must be MAJOR.MINOR.PATCH')
    .optional(),
  /** Start even on an etcd older than the minimum (its lease bugs can put a VIP on two nodes). Logged loudly. */
  allowUnsupportedVersion: z.boolean().default(false),
};

/** Endpoints and the TLS/auth fields must agree: https everywhere when TLS is configured. */
export function etcdConnectionIssue(e: { endpoints: string[]; tls?: unknown }): string | undefined {
  const schemes = new Set(e.endpoints.map((x) => x.split(':')[0]));
  if (schemes.size > 1) return 'endpoints mix http:// and https://';
  if (e.tls !== undefined && !schemes.has('https')) return 'tls needs https:// endpoints';
  return undefined;
}

export interface EtcdConfig {
  endpoints: string[];
  /** Per-call timeout for unary requests, ms. */
  timeoutMs?: number;
  dialTimeoutMs?: number;
  tls?: { ca: string; cert?: string; key?: string };
  auth?: { file: string };
}

function readPart(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`etcd ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Reads an etcd credentials file: one line `user:password` (the form `etcdctl --user` takes). */
export function readEtcdAuthFile(path: string): { username: string; password: string } {
  const text = readPart(path, 'auth file').toString('utf8');
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  const i = line.indexOf(':');
  const username = i > 0 ? line.slice(0, i).trim() : '';
  const password = i > 0 ? line.slice(i + 1).replace(/\r$/, '') : '';
  if (!username || !password) throw new Error(`etcd auth file ${path}: expected one line "user:password"`);
  return { username, password };
}

let ipServerNameQuieted = false;
/**
 * grpc-js passes the endpoint's host as TLS server name, and Node warns (DEP0123) for every connection to an IP
 * address. etcd endpoints are IP addresses by design (the certificates carry IP SANs, verified as before); the warning
 * would be printed by every CLI call. Drop only that warning, once per process.
 */
function quietIpServerNameWarning(): void {
  if (ipServerNameQuieted) return;
  ipServerNameQuieted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const code =
      typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : (rest[1] as unknown);
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

/** How soon the gRPC channel tries an etcd member again after a failed connection (ms): first, and at most. */
export const RECONNECT_BACKOFF_MS = { initial: 100, max: 1000 } as const;

export function connectEtcd(cfg: EtcdConfig): Etcd3 {
  for (const e of cfg.endpoints) {
    const u = new URL(e);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new Error(`etcd endpoint must be http(s)://host:port: ${e}`);
  }
  const issue = etcdConnectionIssue(cfg);
  if (issue) throw new Error(`etcd: ${issue}`);
  const opts: IOptions = {
    hosts: cfg.endpoints,
    dialTimeout: cfg.dialTimeoutMs ?? 2000,
    // A deadline on a stream would end keepalive and watch streams every few seconds: unary calls only.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + (cfg.timeoutMs ?? 3000)) }),
    // Our own loops retry failed calls. etcd3's default circuit breaker would refuse calls for 5 s after a
    // partition heals, and its retries would hide how long a call really took.
    // grpc-js shares one subchannel (one TCP connection attempt) among every channel to the same member, and a
    // connect made during a partition hangs in SYN retransmits for up to ~2 min; the channels etcd3 re-creates
    // after each failure all waited on it: an agent cut from etcd for two minutes came back almost a minute after
    // the cut healed (failsafe-cut e2e, CI). A channel of its own dials afresh, and the reconnect backoff (120 s
    // by default) is capped, so that a member that is back is found within about a second.
    grpcOptions: {
      'grpc.use_local_subchannel_pool': 1,
      // A connection whose packets vanish (a partition, a frozen member) is closed after a missed ping, so that
      // the streams on it fail and are opened again, instead of waiting for TCP (minutes). etcd refuses pings more
      // often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
      'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_MS.initial,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MS.max,
    },
    faultHandling: {
      host: () => noop,
      global: noop,
      watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 1000 }) as never, // etcd3 calls .next() on it
    },
  };
  if (cfg.tls) {
    quietIpServerNameWarning();
    opts.credentials = {
      rootCertificate: readPart(cfg.tls.ca, 'CA'),
      ...(cfg.tls.cert && cfg.tls.key
        ? { certChain: readPart(cfg.tls.cert, 'client certificate'), privateKey: readPart(cfg.tls.key, 'client key') }
        : {}),
    };
  }
  if (cfg.auth) opts.auth = readEtcdAuthFile(cfg.auth.file);
  const client = new Etcd3(opts);
  // Every call and stream to the member that answers, away from one that failed (etcd-failover.ts).
  installFailover(client);
  return client;
}

export {
  ETCD_MINIMUM,
  checkEtcdVersion,
  compareVersions,
  etcdVersionProblem,
  EtcdVersionError,
  parseEtcdVersion,
  type EtcdVersionCheck,
} from './etcd-version.js';
export { listPrefix, Mirror, type Entry, type MirrorEvents } from './etcd-mirror.js';
