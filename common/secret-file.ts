// Files that hold secrets (MySQL option files, cloud API tokens, the etcd auth file) must be private to their
// owner: a group- or world-readable secret is refused at start, with the file and the fix in the message.
import { statSync } from 'node:fs';

export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

/** Why `path` may not hold a secret, or undefined when it may (a regular file, no group/other permission bits). */
export function secretFileProblem(path: string, what: string): string | undefined {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    return `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  if (!st.isFile()) return `${what} ${path} is not a regular file`;
  const loose = st.mode & 0o077;
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
export function assertSecretFiles(files: ReadonlyArray<{ path: string; what: string }>): void {
  const problems = files.map((f) => secretFileProblem(f.path, f.what)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new SecretFileError(problems.join('; '));
}

/** The secret files an agent or controller configuration names. */
export function secretFilesOf(config: {
  etcd: { auth?: { file: string } | undefined };
  credentials?: Record<string, string>;
}): Array<{ path: string; what: string }> {
  return [
    ...(config.etcd.auth ? [{ path: config.etcd.auth.file, what: 'etcd auth file' }] : []),
    ...Object.entries(config.credentials ?? {}).map(([name, path]) => ({ path, what: `credentials "${name}"` })),
  ];
}
