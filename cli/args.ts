// The CLI's options: node:util parseArgs (strict), options anywhere on the line (`vipwarden --etcd URL status`),
// the environment as defaults.
import { DEFAULT_PREFIX } from '../common/keyspace.js';
import { parseCommandLine, UsageError } from '../common/command-line.js';

export { UsageError };

export interface Options {
  etcd: string[];
  prefix: string;
  output: 'table' | 'json';
  timeoutMs: number;
  positional: string[];
  unpin: boolean;
  tls?: { ca: string; cert?: string; key?: string };
  auth?: { file: string };
}

export const CLI_OPTIONS = {
  etcd: { type: 'string' },
  prefix: { type: 'string' },
  output: { type: 'string', short: 'o' },
  timeout: { type: 'string' },
  unpin: { type: 'boolean' },
  node: { type: 'string' },
  'etcd-ca': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
  'etcd-auth-file': { type: 'string' },
} as const;

/** `--help` or `--version` anywhere, or the options and positionals (the command first). */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv): 'help' | 'version' | ParsedCli {
  const cl = parseCommandLine(argv, CLI_OPTIONS, { positionals: true });
  if (cl.kind !== 'run') return cl.kind;
  return { options: toOptions(cl.values, cl.positionals, env), node: cl.values.node };
}

export interface ParsedCli {
  options: Options;
  /** `validate --node NAME`: the node name an agent config without `node:` gets. */
  node?: string;
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Options {
  const r = parseCli(argv, env);
  if (typeof r === 'string') throw new UsageError(`--${r} is not an option here`);
  return r.options;
}

function toOptions(
  v: {
    etcd?: string;
    prefix?: string;
    output?: string;
    timeout?: string;
    unpin?: boolean;
    'etcd-ca'?: string;
    'etcd-cert'?: string;
    'etcd-key'?: string;
    'etcd-auth-file'?: string;
  },
  positional: string[],
  env: NodeJS.ProcessEnv,
): Options {
  const o: Options = {
    etcd: (v.etcd ?? env.VIPWARDEN_ETCD ?? 'http://127.0.0.1:2379').split(','),
    prefix: v.prefix ?? env.VIPWARDEN_PREFIX ?? DEFAULT_PREFIX,
    output: 'table',
    timeoutMs: 3000,
    positional,
    unpin: v.unpin ?? false,
  };
  if (v.output !== undefined) {
    if (v.output !== 'json' && v.output !== 'table') throw new UsageError('-o takes json or table');
    o.output = v.output;
  }
  if (v.timeout !== undefined) {
    o.timeoutMs = Number(v.timeout);
    if (!/^\d+$/.test(v.timeout) || o.timeoutMs < 1 || o.timeoutMs > 600_000)
      throw new UsageError(`--timeout takes milliseconds (1 to 600000), got "${v.timeout}"`);
  }
  for (const e of o.etcd) {
    let u: URL | undefined;
    try {
      u = new URL(e);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
      throw new UsageError(`etcd endpoint "${e}" is not an http(s)://host:port URL (--etcd or VIPWARDEN_ETCD)`);
    }
  }
  const ca = v['etcd-ca'] ?? env.VIPWARDEN_ETCD_CA;
  const cert = v['etcd-cert'] ?? env.VIPWARDEN_ETCD_CERT;
  const key = v['etcd-key'] ?? env.VIPWARDEN_ETCD_KEY;
  const authFile = v['etcd-auth-file'] ?? env.VIPWARDEN_ETCD_AUTH_FILE;
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--etcd-cert and --etcd-key go together (or VIPWARDEN_ETCD_CERT and VIPWARDEN_ETCD_KEY)');
  if (cert !== undefined && ca === undefined)
    throw new UsageError('a client certificate needs the CA too: --etcd-ca (or VIPWARDEN_ETCD_CA)');
  if (ca !== undefined) {
    o.tls = { ca, ...(cert !== undefined && key !== undefined ? { cert, key } : {}) };
    if (o.etcd.some((e) => !e.startsWith('https://')))
      throw new UsageError('TLS (--etcd-ca) needs https:// endpoints (--etcd or VIPWARDEN_ETCD)');
  }
  if (authFile !== undefined) o.auth = { file: authFile };
  if (!o.prefix.startsWith('/'))
    throw new UsageError(`etcd prefix "${o.prefix}" must start with "/" (--prefix or VIPWARDEN_PREFIX)`);
  return o;
}
