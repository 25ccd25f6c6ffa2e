// The container image (hack/image/build.sh: mmdebstrap root + the single executable, assembled with umoci), run
// with runc the way the DaemonSet and Deployment in deploy/kubernetes run it: the controller as the image's user
// (65532) with no capability; the agent as uid 0 with only NET_ADMIN and NET_RAW, in a testbed node's network
// namespace (the node's network, as hostNetwork gives it), a read-only root, its config and state mounted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { stringify as toYaml } from 'yaml';
import { collectStatus } from '../../cli/main.js';
import { connectEtcd } from '../../common/etcd.js';
import { Keys } from '../../common/keyspace.js';
import { spawnLogged, type ProcHandle } from '../../hack/testbed/proc.js';
import { requireBuilt, webGroup } from '../../hack/testbed/cluster.js';
import { createTestbed, startEtcd, type EtcdCluster, type Testbed } from '../harness/testbed.js';
import { buildImage, run, runcBundle, waitFor } from './package-helpers.js';

jest.setTimeout(15 * 60_000);

const PREFIX = '/image-test/';
const keys = new Keys(PREFIX);
let img: { image: string; archive: string; layout: string };
let dir: string;
let tb: Testbed;
let etcd: EtcdCluster;
let client: Etcd3;
const containers: { id: string; proc: ProcHandle }[] = [];

beforeAll(async () => {
  requireBuilt();
  img = await buildImage();
  dir = mkdtempSync('/var/tmp/vw-image-test-');
  tb = await createTestbed({ name: 'image', nodes: 1 });
  // Plain HTTP: the TLS settings are the same files either way (test/integration/sea.test.ts runs them with TLS).
  etcd = await startEtcd({ members: 1, extraHosts: [tb.bridgeIp], tls: false });
  client = connectEtcd(etcd.clientConfig());
}, 20 * 60_000);

afterAll(async () => {
  for (const c of containers) {
    await run(['runc', 'kill', c.id, 'KILL']).catch(() => undefined);
    await c.proc.stop({ timeoutMs: 5000 });
    await run(['runc', 'delete', '--force', c.id]).catch(() => undefined);
  }
  client?.close();
  await etcd?.stop();
  await tb?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const tag = () => img.image.split(':').pop()!;

test('the archive is an OCI image: name, user, entrypoint, two layers', async () => {
  const r = await run(['skopeo', 'inspect', '--config', `oci-archive:${img.archive}`]);
  expect(r.code).toBe(0);
  const cfg = JSON.parse(r.out) as { config: { User: string; Entrypoint: string[] }; rootfs: { diff_ids: string[] } };
  expect(cfg.config.User).toBe('65532:65532');
  expect(cfg.config.Entrypoint).toEqual(['/usr/bin/vipwarden']);
  expect(cfg.rootfs.diff_ids).toHaveLength(2);
  expect(img.image).toMatch(/^ghcr\.io\/vipwarden\/vipwarden:\d+\.\d+\.\d+/);
  const index = await run(['tar', '-xOf', img.archive, './index.json']);
  expect(index.out).toContain(`"io.containerd.image.name":"${img.image}"`);
});

async function runOnce(name: string, spec: Parameters<typeof runcBundle>[3]) {
  const bundle = await runcBundle(img.layout, tag(), join(dir, name), spec);
  return run(['runc', 'run', '--bundle', bundle, `vw-img-${process.pid}-${name}`], { timeoutMs: 60_000 });
}

test('as its own user with no capability: --help, and the agent refuses a missing config clearly', async () => {
  const help = await runOnce('help', { args: ['/usr/bin/vipwarden', '--help'], uid: 65532, gid: 65532, caps: [] });
  expect(`${help.out}${help.err}`).toContain('usage: vipwarden');
  const agent = await runOnce('noconf', {
    args: ['/usr/bin/vipwarden-agent', '--config', '/etc/vipwarden/agent.yaml'],
    uid: 65532,
    gid: 65532,
    caps: [],
  });
  expect(agent.code).toBe(1);
  expect(agent.err).toContain('/etc/vipwarden/agent.yaml');
  expect(agent.err).not.toMatch(/Warning/);
});

test('controller (uid 65532, no capability) and agent (uid 0, NET_ADMIN + NET_RAW) from the image hold a VIP', async () => {
  const node = tb.node(0);
  const endpoints = etcd.endpointsFor(tb.bridgeIp);
  const vip = `${tb.vip(0)}/24`;
  const ctlConf = join(dir, 'ctl-conf');
  const groups = join(ctlConf, 'groups');
  const agentConf = join(dir, 'agent-conf');
  for (const [d, f, v] of [
    [
      ctlConf,
      'controller.yaml',
      { id: 'img-ctl', etcd: { endpoints, prefix: PREFIX }, source: { directory: '/etc/vipwarden/groups' } },
    ],
    [
      agentConf,
      'agent.yaml',
      { node: node.name, etcd: { endpoints, prefix: PREFIX }, interface: node.iface, vipRanges: ['198.18.0.0/15'] },
    ],
    [groups, 'web.yaml', webGroup({ name: 'img-web', vips: [vip], nodes: [[node.name, 100]], checks: [] })],
  ] as const) {
    (await import('node:fs')).mkdirSync(d, { recursive: true });
    writeFileSync(join(d, f), toYaml(v));
  }
  const start = async (name: string, spec: Parameters<typeof runcBundle>[3]) => {
    const bundle = await runcBundle(img.layout, tag(), join(dir, name), spec);
    const id = `vw-img-${process.pid}-${name}`;
    const proc = spawnLogged(['runc', 'run', '--bundle', bundle, id], {
      name,
      stdoutLog: join(dir, `${name}.out.log`),
      stderrLog: join(dir, `${name}.err.log`),
    });
    containers.push({ id, proc });
    return proc;
  };
  const logs = async (name: string) =>
    (await run(['cat', join(dir, `${name}.out.log`), join(dir, `${name}.err.log`)])).out;
  await start('controller', {
    args: ['/usr/bin/vipwarden-controller', '--config', '/etc/vipwarden/controller.yaml'],
    uid: 65532,
    gid: 65532,
    caps: [],
    mounts: [{ source: ctlConf, destination: '/etc/vipwarden', readonly: true }],
  });
  await start('agent', {
    args: ['/usr/bin/vipwarden-agent', '--config', '/etc/vipwarden/agent.yaml'],
    uid: 0,
    gid: 0,
    caps: ['CAP_NET_ADMIN', 'CAP_NET_RAW'],
    netns: node.netns,
    mounts: [
      { source: agentConf, destination: '/etc/vipwarden', readonly: true },
      { source: join(dir, 'state'), destination: '/run/vipwarden' },
    ],
  });
  await waitFor(
    'the group placed on the agent node',
    async () => (await collectStatus(client, keys)).groups.find((g) => g.group === 'img-web')?.holder === node.name,
    60_000,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\ncontroller:\n${await logs('controller')}\nagent:\n${await logs('agent')}`);
  });
  const hasVip = async () =>
    (await tb.exec(node.name, ['ip', '-br', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(vip);
  await waitFor('the VIP on the node', hasVip, 20_000);
  // The address is reachable from the client namespace: ARP answered for it.
  const arp = await tb.exec('client', ['arping', '-q', '-c', '1', '-w', '2', '-i', 'eth0', tb.vip(0)], {
    allowFailure: true,
  });
  expect(arp.exitCode).toBe(0);

  // SIGTERM to the container, as the kubelet stops a pod: the VIP is released and the lease revoked.
  const agent = containers.find((c) => c.id.endsWith('-agent'))!;
  await run(['runc', 'kill', agent.id, 'TERM']);
  expect((await agent.proc.done).exitCode).toBe(0);
  expect(await hasVip()).toBe(false);
  expect(await client.get(keys.node(node.name)).string()).toBeNull();
});
