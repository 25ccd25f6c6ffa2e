import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSecretFiles, secretFileProblem, secretFilesOf } from './secret-file.js';

describe('secret files', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'vw-secret-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [0o600, undefined],
    [0o400, undefined],
    [0o640, /accessible by group \(mode 0640\).*chmod 600/],
    [0o604, /accessible by others \(mode 0604\)/],
    [0o644, /accessible by group and others \(mode 0644\)/],
    [0o620, /accessible by group/],
  ])('mode %o', (mode, want) => {
    const p = join(dir, `f${mode.toString(8)}`);
    writeFileSync(p, 'x');
    chmodSync(p, mode);
    const why = secretFileProblem(p, 'token file');
    if (want === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(want);
  });

  it('refuses a missing file or a directory', () => {
    expect(secretFileProblem(join(dir, 'nope'), 'x')).toMatch(/ENOENT/);
    expect(secretFileProblem(dir, 'x')).toMatch(/not a regular file/);
  });

  it('names every offending file from the config, never their contents', () => {
    const auth = join(dir, 'etcd.auth');
    const db = join(dir, 'db.cnf');
    writeFileSync(auth, 'user:hunter2\n', { mode: 0o644 });
    chmodSync(auth, 0o644);
    writeFileSync(db, '[client]\npassword=hunter2\n', { mode: 0o600 });
    const files = secretFilesOf({ etcd: { auth: { file: auth } }, credentials: { db } });
    expect(files).toEqual([
      { path: auth, what: 'etcd auth file' },
      { path: db, what: 'credentials "db"' },
    ]);
    let msg = '';
    try {
      assertSecretFiles(files);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/etcd auth file .*etcd\.auth is accessible by group and others/);
    expect(msg).not.toMatch(/db\.cnf/);
    expect(msg).not.toContain('hunter2');
  });

  it('checks the etcd TLS private key and the peer key file too', () => {
    const key = join(dir, 'client.key');
    const peer = join(dir, 'peer.key');
    writeFileSync(key, 'k');
    chmodSync(key, 0o644);
    writeFileSync(peer, 'p');
    chmodSync(peer, 0o640);
    const files = secretFilesOf({ etcd: { tls: { key } }, peer: { keyFile: peer } });
    expect(files.map((f) => f.what)).toEqual(['etcd TLS private key', 'peer key file']);
    expect(() => assertSecretFiles(files)).toThrow(
      /etcd TLS private key .*client\.key is accessible by group and others \(mode 0644\).*; peer key file .*peer\.key is accessible by group/,
    );
  });

  it('a TLS key may be group-readable only when root owns it and this process is not root (secret volumes)', () => {
    const p = join(dir, 'shared.key');
    writeFileSync(p, 'k');
    chmodSync(p, 0o640);
    const asRoot = process.getuid?.() === 0;
    // Run as root (the tests' usual case), the file is root's and root needs no group bit: refused.
    if (asRoot) expect(secretFileProblem(p, 'etcd TLS private key', { rootGroupRead: true })).toMatch(/group/);
    chmodSync(p, 0o644);
    expect(secretFileProblem(p, 'etcd TLS private key', { rootGroupRead: true })).toMatch(/others/);
    chmodSync(p, 0o660);
    expect(secretFileProblem(p, 'etcd TLS private key', { rootGroupRead: true })).toMatch(/group/);
  });
});
