// Files that hold secrets (MySQL option files, cloud API tokens, the etcd auth file, TLS private keys, the peer key)
// must be private to their owner: a group- or world-readable secret is refused at start, with the file and the fix
// in the message.
import { statSync } from 'node:fs';

export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

export interface SecretFile {
  path: string;
  what: string;
  /**
   * Also accept group read (never write, never others) on a file owned by root when this process is not root:
   * the only way a non-root process reads a key that something else provisions (a Kubernetes secret volume with
   * fsGroup, a root-owned key in the ssl-cert group); PostgreSQL's rule for its ssl_key_file. Root needs no group.
   */
  rootGroupRead?: boolean;
}

/** Why `path` may not hold a secret, or undefined when it may (a regular file, no group/other permission bits). */
export function secretFileProblem(
  path: string,
  what: string,
  opts: { rootGroupRead?: boolean } = {},
): string | undefined {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    return `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  if (!st.isFile()) return `${what} ${path} is not a regular file`;
  const sharedByRoot = opts.rootGroupRead === true && st.uid === 0 && process.getuid?.() !== 0;
  const loose = st.mode & (sharedByRoot ? 0o037 : 0o077);
  if (loose !== 0) {
    const who = [loose & 0o070 ? 'group' : '', loose & 0o007 ? 'others' : ''].filter(Boolean).join(' and ');
    return (
      `${what} ${path} is accessible by ${who} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): ` +
      `refusing to use it; run chmod 600 ${path}`
    );
  }
  return undefined;
}

/** Throws a SecretFileError naming every file that may not hold a secret. */
export function assertSecretFiles(files: ReadonlyArray<SecretFile>): void {
  const problems = files.map((f) => secretFileProblem(f.path, f.what, f)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new SecretFileError(problems.join('; '));
}

/** The secret files an agent, controller or CLI configuration names. */
export function secretFilesOf(config: {
  etcd: { auth?: { file: string } | undefined; tls?: { key?: string | undefined } | undefined };
  credentials?: Record<string, string>;
  peer?: { keyFile: string } | undefined;
}): SecretFile[] {
  const key = config.etcd.tls?.key;
  return [
    ...(config.etcd.auth ? [{ path: config.etcd.auth.file, what: 'etcd auth file' }] : []),
    ...(key ? [{ path: key, what: 'etcd TLS private key', rootGroupRead: true }] : []),
    ...Object.entries(config.credentials ?? {}).map(([name, path]) => ({ path, what: `credentials "${name}"` })),
    ...(config.peer ? [{ path: config.peer.keyFile, what: 'peer key file' }] : []),
  ];
}
