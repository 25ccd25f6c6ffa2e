// MySQL / MariaDB check: connect, `SELECT 1`, then the optional read_only and replication expectations.
// Credentials never come from the FailoverGroup: the check names a credentials entry of the agent's own
// configuration, which points at a MySQL option file on the node ([client] user=, password=, socket=).
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import mysqlCore from 'mysql2';
import mysql from 'mysql2/promise';
import type { HealthCheckSpec } from '../../crds/failovergroup.js';
import type { AgentConfig } from '../config.js';
import type { CheckFn, CheckOutcome } from './types.js';

export type MysqlCheckSpec = NonNullable<HealthCheckSpec['mysql']>;

/** What a credentials file may say. Host and port come from the FailoverGroup, never from here. */
export interface MysqlOptionFile {
  user?: string;
  password?: string;
  socket?: string;
}

export class OptionFileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'OptionFileError';
  }
}

const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', r: '\r', s: ' ', '\\': '\\', '"': '"', "'": "'" };

/** An option value as MySQL reads it: quoted ('...' or "...", with backslash escapes) or bare up to a # comment. */
function optionValue(raw: string, line: number): string {
  const v = raw.trim();
  const q = v[0];
  if (q === '"' || q === "'") {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const ch = v[i]!;
      if (ch === '\\' && i + 1 < v.length) {
        const next = v[++i]!;
        out += ESCAPES[next] ?? `\\${next}`;
      } else if (ch === q) {
        const rest = v.slice(i + 1).trim();
        if (rest !== '' && !rest.startsWith('#')) throw new OptionFileError(line, 'text after the closing quote');
        return out;
      } else out += ch;
    }
    throw new OptionFileError(line, 'unterminated quote');
  }
  const hash = v.indexOf('#');
  return (hash >= 0 ? v.slice(0, hash) : v).trim();
}

/**
 * Parses a MySQL option file and returns the [client] group's user, password and socket (later lines win, as
 * in MySQL). Other groups and other options are ignored; `!include` is refused rather than silently skipped.
 */
export function parseOptionFile(text: string): MysqlOptionFile {
  const out: MysqlOptionFile = {};
  let section: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, i) => {
    const n = i + 1;
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.startsWith('!'))
      throw new OptionFileError(n, `${line.split(/\s/)[0]} is not supported in a vipwarden credentials file`);
    if (line.startsWith('[')) {
      const m = /^\[\s*([^\]]+?)\s*\]\s*(#.*)?$/.exec(line);
      if (!m) throw new OptionFileError(n, 'bad group header');
      section = m[1]!.toLowerCase();
      return;
    }
    if (section === undefined) throw new OptionFileError(n, 'option outside of a [group]');
    if (section !== 'client') return;
    const eq = line.indexOf('=');
    const name = (eq >= 0 ? line.slice(0, eq) : line).trim().toLowerCase().replace(/_/g, '-');
    const value = eq >= 0 ? optionValue(line.slice(eq + 1), n) : '';
    if (name === 'user') out.user = value;
    else if (name === 'password') out.password = value;
    else if (name === 'socket') {
      if (!value.startsWith('/')) throw new OptionFileError(n, 'socket must be an absolute path');
      out.socket = value;
    }
  });
  return out;
}

export interface MysqlEndpoint {
  socketPath?: string;
  host?: string;
  port?: number;
  user: string;
  password?: string;
}

/**
 * Where and as whom to connect: the group's socket, else the credentials file's socket, else the group's host
 * and port. Without credentials the agent connects as its own OS user with no password (unix_socket auth).
 */
export function endpointFor(spec: MysqlCheckSpec, file: MysqlOptionFile | undefined, osUser: string): MysqlEndpoint {
  const socketPath = spec.socket ?? file?.socket;
  const who = { user: file?.user ?? osUser, ...(file?.password !== undefined ? { password: file.password } : {}) };
  return socketPath ? { socketPath, ...who } : { host: spec.host, port: spec.port, ...who };
}

/** One replication status row, with MySQL 8's and MariaDB's/MySQL 5's column names folded together. */
export interface ReplicaStatus {
  ioRunning: string;
  sqlRunning: string;
  lagSeconds: number | null;
  lastError?: string;
}

export function replicaStatusOf(row: Record<string, unknown> | undefined): ReplicaStatus | null {
  if (!row) return null;
  const pick = (...names: string[]) => names.map((n) => row[n]).find((v) => v !== undefined);
  const lag = pick('Seconds_Behind_Source', 'Seconds_Behind_Master');
  const err = pick('Last_IO_Error', 'Last_SQL_Error', 'Last_Error');
  return {
    ioRunning: String(pick('Replica_IO_Running', 'Slave_IO_Running') ?? 'No'),
    sqlRunning: String(pick('Replica_SQL_Running', 'Slave_SQL_Running') ?? 'No'),
    lagSeconds: lag === null || lag === undefined || lag === '' ? null : Number(lag),
    ...(typeof err === 'string' && err !== '' ? { lastError: err } : {}),
  };
}

export interface MysqlObservation {
  readOnly: boolean;
  /** undefined: not asked; null: the server is not a replica. */
  replica?: ReplicaStatus | null;
}

/** The verdict, from what the server said (pure). */
export function judgeMysql(spec: MysqlCheckSpec, obs: MysqlObservation): CheckOutcome {
  const notes = ['SELECT 1 ok', `read_only=${obs.readOnly ? 1 : 0}`];
  if (spec.expectReadOnly !== undefined && obs.readOnly !== spec.expectReadOnly) {
    return {
      ok: false,
      message: `read_only is ${obs.readOnly ? 'ON' : 'OFF'}, expected ${spec.expectReadOnly ? 'ON' : 'OFF'}`,
    };
  }
  if (spec.replication) {
    const r = obs.replica;
    if (!r) return { ok: false, message: 'not a replica: replication status is empty' };
    const why = r.lastError ? ` (${r.lastError})` : '';
    if (r.ioRunning !== 'Yes') return { ok: false, message: `replication IO thread is ${r.ioRunning}${why}` };
    if (r.sqlRunning !== 'Yes') return { ok: false, message: `replication SQL thread is ${r.sqlRunning}${why}` };
    const max = spec.replication.maxLagSeconds;
    if (max !== undefined) {
      if (r.lagSeconds === null || !Number.isFinite(r.lagSeconds))
        return { ok: false, message: 'replication lag is unknown' };
      if (r.lagSeconds > max) return { ok: false, message: `replication lag ${r.lagSeconds}s exceeds ${max}s` };
    }
    notes.push(`replication running, lag ${r.lagSeconds ?? '?'}s`);
  }
  return { ok: true, message: notes.join('; ') };
}

/** Reads the credentials file that the check names, through the agent's configuration. */
export async function credentialsFor(
  spec: MysqlCheckSpec,
  config: Pick<AgentConfig, 'credentials'>,
): Promise<MysqlOptionFile | undefined> {
  if (!spec.credentials) return undefined;
  const path = config.credentials[spec.credentials];
  if (!path) throw new Error(`credentials "${spec.credentials}" are not in the agent configuration`);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read credentials file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return parseOptionFile(text);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** What a server may ask for and why it is refused (the password never leaves in a form the server can read). */
export const REFUSED_AUTH_PLUGINS: Record<string, string> = {
  mysql_clear_password: 'sends the password in clear text',
  sha256_password: 'sends the password in clear text over TLS, or encrypted to a key the server itself supplies',
  // MariaDB's PAM/GSSAPI dialog plugins forward whatever the server prompts for: the password, in clear.
  dialog: 'forwards the password to whatever the server prompts',
  auth_gssapi_client: 'is not supported by the vipwarden check',
  client_ed25519: 'is not supported by the vipwarden check',
};

export class RefusedAuthError extends Error {
  readonly code = 'VIPWARDEN_AUTH_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'RefusedAuthError';
  }
}

type AuthPlugin = (o: { connection: { config: { password?: string } }; command: unknown }) => (data: Buffer) => unknown;

// mysql2's own caching_sha2_password, from the authPlugins its index exports (lib/ is hidden by its package
// exports; a path resolved at run time would also not survive the single-executable bundle).
const cachingSha2 = (mysqlCore as unknown as { authPlugins: { caching_sha2_password: (o: object) => AuthPlugin } })
  .authPlugins.caching_sha2_password;
const FULL_AUTH = Buffer.from([4]);

/**
 * The authPlugins a check connects with. Only challenge-response answers go out: mysql_native_password (mysql2's
 * own), caching_sha2_password's scramble, unix_socket's empty answer. Every plugin that would hand the server the
 * password (clear text, or RSA-encrypted to a key the server supplies, which the server can decrypt) is refused
 * with a fatal error before a byte of it is written. caching_sha2_password's "full authentication" sends the
 * password as is over a unix socket: allowed only when the socket is the agent's own (its credentials file's),
 * never one a FailoverGroup named.
 */
export function safeAuthPlugins(opts: { trustedSocket: boolean }): Record<string, AuthPlugin> {
  const refuse = (name: string, why: string) => () => () => {
    throw new RefusedAuthError(`server asked for ${name}, which ${why}: refused`);
  };
  const plugins: Record<string, AuthPlugin> = {
    // MariaDB's unix_socket authentication needs no client data (the server checks the peer's uid).
    unix_socket: () => () => Buffer.alloc(0),
  };
  for (const [name, why] of Object.entries(REFUSED_AUTH_PLUGINS)) plugins[name] = refuse(name, why);
  const caching = cachingSha2({});
  plugins['caching_sha2_password'] = (o) => {
    const inner = caching(o);
    let round = 0;
    return (data: Buffer) => {
      round++;
      if (round > 1 && FULL_AUTH.equals(data) && !opts.trustedSocket)
        throw new RefusedAuthError(
          'server asked caching_sha2_password for full authentication, which hands it the password ' +
            '(in clear text, or encrypted to a key it supplies): refused; connect through the unix socket named in ' +
            'the credentials file, or log in once so the server caches the password hash',
        );
      return inner(data);
    };
  };
  return plugins;
}

const isConnError = (e: unknown): e is { code?: string; message: string } =>
  typeof e === 'object' && e !== null && 'message' in e;

/** A fresh connection per run: what a client would get now, not what a pooled connection remembers. */
export const mysqlCheck: CheckFn = async (spec, deps, signal) => {
  const m = spec.mysql;
  if (!m) return { ok: false, message: 'mysql settings missing' };
  let file: MysqlOptionFile | undefined;
  try {
    file = await credentialsFor(m, deps.config);
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  }
  const ep = endpointFor(m, file, userInfo().username);
  let conn: mysql.Connection | undefined;
  const onAbort = () => conn?.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    conn = await mysql.createConnection({
      ...ep,
      connectTimeout: spec.timeoutMs,
      enableCleartextPlugin: false,
      authPlugins: safeAuthPlugins({ trustedSocket: ep.socketPath !== undefined && ep.socketPath === file?.socket }),
    } as mysql.ConnectionOptions);
    if (signal.aborted) return { ok: false, message: 'timeout' };
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT 1 AS one, @@global.read_only AS ro');
    if (Number(rows[0]?.['one']) !== 1) return { ok: false, message: 'SELECT 1 did not return 1' };
    const obs: MysqlObservation = { readOnly: Number(rows[0]?.['ro']) === 1 };
    if (m.replication) obs.replica = replicaStatusOf(await replicaRow(conn));
    await conn.end().catch(() => conn?.destroy());
    conn = undefined;
    return judgeMysql(m, obs);
  } catch (e) {
    if (signal.aborted) return { ok: false, message: 'timeout' };
    return { ok: false, message: isConnError(e) ? `${e.code ? `${e.code}: ` : ''}${e.message}` : String(e) };
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn?.destroy();
  }
};

/** SHOW REPLICA STATUS (MySQL 8.0.22+, MariaDB 10.5.1+), falling back to SHOW SLAVE STATUS on older servers. */
async function replicaRow(conn: mysql.Connection): Promise<Record<string, unknown> | undefined> {
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SHOW REPLICA STATUS');
    return rows[0];
  } catch (e) {
    if ((e as { code?: string }).code !== 'ER_PARSE_ERROR') throw e;
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SHOW SLAVE STATUS');
    return rows[0];
  }
}
