// etcd access shared by controller, agent and CLI: the client, and a Mirror of one key prefix.
// A Mirror lists, then watches from the listed revision; on a disconnect, compaction or error it lists again.
// Watches are hints: whoever uses the mirror reads its whole state on each pass (level-triggered).
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { ExponentialBackoff, noop } from 'cockatiel';
import { Etcd3, type IOptions, type Watcher } from 'etcd3';
import { z } from 'zod';
import type { Logger } from './log.js';

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
  return new Etcd3(opts);
}

// ---- server version ----

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

export interface Entry {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  lease: string;
}

export interface MirrorEvents {
  change: [keys: string[]];
  synced: [revision: number];
}

/**
 * An in-memory copy of every key under a prefix, kept current by list + watch.
 * `start(signal)` runs until the signal aborts; `ready` resolves after the first list.
 */
export class Mirror extends EventEmitter<MirrorEvents> {
  readonly entries = new Map<string, Entry>();
  revision = 0;
  private watcher: Watcher | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private resolveReady!: () => void;
  readonly ready: Promise<void> = new Promise((r) => (this.resolveReady = r));
  relists = 0;

  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
    private readonly log: Logger,
    private readonly opts: { resyncMs?: number } = {},
  ) {
    super();
  }

  start(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.stop(), { once: true });
    void this.relist('start');
  }

  stop(): void {
    this.stopped = true;
    if (this.relistTimer) clearTimeout(this.relistTimer);
    void this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
  }

  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** Entries whose key starts with `sub` (a full key prefix). */
  *under(sub: string): Iterable<Entry> {
    for (const e of this.entries.values()) if (e.key.startsWith(sub)) yield e;
  }

  private scheduleRelist(why: string, delayMs: number): void {
    if (this.stopped || this.relistTimer) return;
    this.relistTimer = setTimeout(() => {
      this.relistTimer = undefined;
      void this.relist(why);
    }, delayMs);
  }

  private async relist(why: string): Promise<void> {
    if (this.stopped) return;
    const old = this.watcher;
    this.watcher = undefined;
    void old?.cancel().catch(() => undefined);
    try {
      const res = await this.client.getAll().prefix(this.prefix).exec();
      if (this.stopped) return;
      const rev = Number(res.header.revision);
      const seen = new Set<string>();
      const changed: string[] = [];
      for (const kv of res.kvs) {
        const e = toEntry(kv);
        seen.add(e.key);
        const prev = this.entries.get(e.key);
        if (!prev || prev.modRevision !== e.modRevision) changed.push(e.key);
        this.entries.set(e.key, e);
      }
      for (const k of [...this.entries.keys()]) {
        if (!seen.has(k)) {
          this.entries.delete(k);
          changed.push(k);
        }
      }
      this.revision = rev;
      this.relists++;
      if (why !== 'start') this.log.info({ prefix: this.prefix, revision: rev, why }, 'etcd prefix listed again');
      await this.watchFrom(rev + 1);
      this.resolveReady();
      this.emit('synced', rev);
      this.emit('change', changed);
      if (this.opts.resyncMs) this.scheduleRelist('periodic resync', this.opts.resyncMs);
    } catch (err) {
      this.log.warn({ err: String(err), prefix: this.prefix }, 'etcd list failed; retrying');
      this.scheduleRelist('list failed', 500);
    }
  }

  private async watchFrom(rev: number): Promise<void> {
    const w = await this.client.watch().prefix(this.prefix).startRevision(String(rev)).withPreviousKV().create();
    if (this.stopped) {
      void w.cancel();
      return;
    }
    this.watcher = w;
    w.on('data', (res) => {
      if (this.watcher !== w) return;
      if (res.compact_revision && Number(res.compact_revision) > 0) {
        this.scheduleRelist('compacted', 0);
        return;
      }
      const changed: string[] = [];
      for (const ev of res.events) {
        const e = toEntry(ev.kv);
        const prev = this.entries.get(e.key);
        if (ev.type === 'Put') {
          if (prev && prev.modRevision >= e.modRevision) continue;
          this.entries.set(e.key, e);
        } else {
          if (prev && prev.modRevision > e.modRevision) continue;
          this.entries.delete(e.key);
        }
        changed.push(e.key);
      }
      const r = Number(res.header.revision);
      if (r > this.revision) this.revision = r;
      if (changed.length) this.emit('change', changed);
    });
    // etcd3 resumes a broken watch by itself, but we cannot see what it missed across a compaction: list again.
    w.on('disconnected', () => {
      if (this.watcher === w) this.scheduleRelist('watch disconnected', 200);
    });
    w.on('error', (err) => {
      if (this.watcher === w) {
        this.log.warn({ err: String(err), prefix: this.prefix }, 'etcd watch error');
        this.scheduleRelist('watch error', 200);
      }
    });
  }
}

function toEntry(kv: {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  lease: string;
}): Entry {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    lease: String(kv.lease ?? '0'),
  };
}
