// Issue 10, items 4 and 7: the built agent, controller and CLI refuse at start a group- or world-readable etcd TLS
// private key, etcd auth file or peer key file, name the file and the fix, and never connect; fixed, they go on.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { realExec } from '../../common/exec.js';
import { TestPki } from '../../hack/etcd/pki.js';
import { REPO, requireBuilt } from '../../hack/testbed/cluster.js';

jest.setTimeout(60_000);

let dir: string;
let tls: { ca: string; cert: string; key: string };
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vw-secrets-'));
  tls = new TestPki(join(dir, 'pki')).client('node1');
  writeFileSync(join(dir, 'auth'), 'cli:hunter2\n', { mode: 0o600 });
  writeFileSync(join(dir, 'peer.key'), `${'p'.repeat(44)}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'agent.yaml'),
    JSON.stringify({
      node: 'node1',
      etcd: { endpoints: ['https://127.0.0.1:9'], tls },
      peer: { listen: '127.0.0.1', keyFile: join(dir, 'peer.key') },
    }),
  );
  writeFileSync(
    join(dir, 'controller.yaml'),
    JSON.stringify({
      etcd: { endpoints: ['https://127.0.0.1:9'], tls },
      source: { directory: dir },
    }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (bin: string, ...args: string[]) =>
  realExec([process.execPath, join(REPO, 'bin', `${bin}.js`), ...args], { timeoutMs: 20_000, okCodes: [1, 2] });
const agent = () => run('vipwarden-agent', '--config', join(dir, 'agent.yaml'));
const controller = () => run('vipwarden-controller', '--config', join(dir, 'controller.yaml'));
const cliKey = () =>
  run(
    'vipwarden',
    'status',
    '--etcd',
    'https://127.0.0.1:9',
    '--etcd-ca',
    tls.ca,
    '--etcd-cert',
    tls.cert,
    '--etcd-key',
    tls.key,
    '--timeout',
    '500',
  );
const cliAuth = () =>
  run('vipwarden', 'status', '--etcd', 'http://127.0.0.1:9', '--etcd-auth-file', join(dir, 'auth'), '--timeout', '500');

describe('secret file permissions at start', () => {
  test('a world-readable etcd TLS key stops the agent, the controller and the CLI', async () => {
    requireBuilt();
    chmodSync(tls.key, 0o644);
    const why = new RegExp(
      `etcd TLS private key ${tls.key} is accessible by group and others \\(mode 0644\\): refusing to use it; run chmod 600`,
    );
    for (const r of [await agent(), await controller(), await cliKey()]) {
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/connect|ECONNREFUSED|cannot reach/i); // refused before any connection
    }
    chmodSync(tls.key, 0o600);
    // Fixed: the CLI gets as far as etcd (which is not there).
    expect((await cliKey()).stderr).toMatch(/cannot reach etcd/);
  });

  test('a group-readable peer key stops the agent; a world-readable auth file stops the CLI', async () => {
    requireBuilt();
    chmodSync(join(dir, 'peer.key'), 0o640);
    const a = await agent();
    expect(a.exitCode).toBe(1);
    expect(a.stderr).toMatch(/peer key file .*peer\.key is accessible by group \(mode 0640\)/);
    chmodSync(join(dir, 'auth'), 0o604);
    const c = await cliAuth();
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toMatch(/etcd auth file .*auth is accessible by others \(mode 0604\)/);
    expect(c.stderr).not.toContain('hunter2');
    chmodSync(join(dir, 'auth'), 0o600);
    expect((await cliAuth()).stderr).toMatch(/cannot reach etcd/);
  });
});
