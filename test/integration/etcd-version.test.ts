// Agent and controller read the etcd server version at start and refuse one below the minimum (issue 15, item 12).
// The harness's etcd is the pinned 3.6 build, which passes; a minimum set above it in the config stands for an old
// server. The override starts anyway and says so loudly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execa } from 'execa';
import { stringify as toYaml } from 'yaml';
import { checkEtcdVersion, EtcdVersionError } from '../../common/etcd.js';
import { silentLogger } from '../../common/log.js';
import { DIST, requireBuilt } from '../../hack/testbed/cluster.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let dir: string;
beforeAll(async () => {
  requireBuilt();
  etcd = await startEtcd({ members: 1 });
  dir = mkdtempSync(join(tmpdir(), 'vipwarden-etcdver-'));
});
afterAll(async () => {
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const serverVersion = () => etcd.binaries.version.replace(/^v/, '');
/** One patch release above the running server: the server counts as too old. */
const aboveServer = () => {
  const [a, b, c] = serverVersion().split('.').map(Number) as [number, number, number];
  return `${a}.${b}.${c + 1}`;
};

function agentConfig(extra: Record<string, unknown>): string {
  const path = join(dir, `agent-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    toYaml({ node: 'node1', etcd: { ...etcd.clientConfig({ user: 'node1' }), ...extra }, stateDir: join(dir, 'st') }),
  );
  return path;
}
function controllerConfig(extra: Record<string, unknown>): string {
  const path = join(dir, `controller-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    toYaml({
      id: 'c-version',
      etcd: { ...etcd.clientConfig({ user: 'controller' }), prefix: '/vw-version/', ...extra },
      source: { directory: dir },
    }),
  );
  return path;
}

describe('etcd server version check', () => {
  test('the harness runs the pinned etcd build, and it passes the check', async () => {
    expect(etcd.binaries.version).toMatch(/^v3\.6\.\d+$/);
    const seen = await checkEtcdVersion(etcd.clientConfig(), silentLogger());
    expect(Object.values(seen)).toEqual([serverVersion()]);
  });

  test('a server below the minimum is refused with a clear error', async () => {
    await expect(
      checkEtcdVersion(etcd.clientConfig(), silentLogger(), { minimumVersion: aboveServer() }),
    ).rejects.toThrow(EtcdVersionError);
    await expect(
      checkEtcdVersion(etcd.clientConfig(), silentLogger(), { minimumVersion: aboveServer() }),
    ).rejects.toThrow(
      new RegExp(
        `refusing to start: .*etcd server ${serverVersion().replace(/\./g, '\\.')} is older than the configured minimum`,
      ),
    );
  });

  test.each(['agent', 'controller'] as const)('the %s refuses to start on a too old etcd', async (who) => {
    const cfg =
      who === 'agent'
        ? agentConfig({ minimumVersion: aboveServer() })
        : controllerConfig({ minimumVersion: aboveServer() });
    const main = join(DIST, who === 'agent' ? 'node-agent' : 'controller', 'main.js');
    const r = await execa(process.execPath, [main, '--config', cfg], { reject: false, timeout: 30_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refusing to start: .* is older than the configured minimum .*allowUnsupportedVersion/);
  });

  test('the override starts the controller anyway and logs a warning', async () => {
    const cfg = controllerConfig({ minimumVersion: aboveServer() });
    const p = execa(
      process.execPath,
      [join(DIST, 'controller', 'main.js'), '--config', cfg, '--allow-unsupported-etcd'],
      {
        reject: false,
        all: true,
      },
    );
    let out = '';
    p.all?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const end = Date.now() + 20_000;
      while (!/controller started/.test(out) && Date.now() < end && p.exitCode === null)
        await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/UNSUPPORTED ETCD VERSION/);
      expect(out).toMatch(/controller started/);
    } finally {
      p.kill('SIGTERM');
      await p;
    }
  });
});
