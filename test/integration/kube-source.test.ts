// The Kubernetes source's informer against a real kube-apiserver, through a TCP proxy that the test cuts: the
// informer is started again after the error, and lists again when its resource version has been compacted away
// (410 Gone). The apiserver runs without its watch cache, so that a watch from an old version goes to etcd.
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { realClock } from '../../common/clock.js';
import { connectEtcd } from '../../common/etcd.js';
import { silentLogger } from '../../common/log.js';
import { KubernetesSource, loadKubeConfig } from '../../controller/sources/kubernetes.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { applyCrd, kubeSlot, waitFor } from './kube-helpers.js';

const slot = kubeSlot();
const env = (): KubeEnv => slot.get();
let proxy: Proxy | undefined;
const ac = new AbortController();

interface Proxy {
  port: number;
  /** Closes every connection and refuses new ones. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function startProxy(target: { host: string; port: number }): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    server = createServer((down) => {
      const up = connect(target.port, target.host);
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      down.pipe(up).pipe(down);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    const a = server.address();
    if (a && typeof a === 'object') port = a.port;
  };
  const cut = async () => {
    const s = server;
    server = undefined;
    if (s) {
      const closed = new Promise((r) => s.close(r));
      for (const sock of sockets) sock.destroy();
      await closed;
    }
  };
  await listen();
  return { port, cut, restore: listen, close: cut };
}

beforeAll(async () => {
  const kube = await slot.start(() => startKube({ extraApiserverArgs: ['--watch-cache=false'] }));
  await applyCrd(kube);
}, 30 * 60_000);

afterAll(async () => {
  ac.abort();
  await proxy?.close();
  await slot.stop();
}, 60_000);

const group = (name: string) =>
  toYaml({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name },
    spec: { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node1' }] },
  });

test('the informer is started again after the connection is cut, and lists again after a 410', async () => {
  await env().kubectl(['apply', '-f', '-'], { input: group('before') });
  const server = new URL(env().server);
  proxy = await startProxy({ host: server.hostname, port: Number(server.port) });
  const kubeconfig = join(env().dir, 'via-proxy.kubeconfig');
  writeFileSync(
    kubeconfig,
    readFileSync(env().kubeconfigPath, 'utf8').replace(env().server, `https://127.0.0.1:${proxy.port}`),
  );

  const source = new KubernetesSource({
    kubeConfig: loadKubeConfig(kubeconfig),
    log: silentLogger(),
    clock: realClock,
    instance: 'test',
    restartDelayMs: { min: 100, max: 400 },
  });
  let changes = 0;
  await source.start(ac.signal, () => changes++);
  expect(source.list().map((g) => g.name)).toEqual(['before']);
  expect(source.stats.lists).toBe(1);
  // The source adds its finalizer to what it sees.
  await waitFor(async () => {
    const r = await env().kubectl(['get', 'fg', 'before', '-o', 'jsonpath={.metadata.finalizers}']);
    return r.stdout.includes('vipwarden.io/release') ? true : undefined;
  }, 'the finalizer on "before"');

  // A change while connected arrives through the watch.
  await env().kubectl(['apply', '-f', '-'], { input: group('watched') });
  await waitFor(
    async () => (source.list().some((g) => g.name === 'watched') ? true : undefined),
    'the watch event for "watched"',
  );
  expect(source.stats.lists).toBe(1);

  // Cut: the informer fails and keeps being started again (with backoff) while the API is unreachable.
  await proxy.cut();
  await waitFor(async () => (source.stats.restarts >= 2 ? true : undefined), 'restarts while cut off');
  // Meanwhile: a group is created, one deleted, and the history compacted away.
  await env().kubectl(['apply', '-f', '-'], { input: group('while-cut') });
  await env().kubectl(['patch', 'fg', 'watched', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  await env().kubectl(['delete', 'fg', 'watched']);
  const etcd = connectEtcd(env().etcdClient);
  try {
    const rev = (await etcd.get('/compact-marker').exec()).header.revision;
    await etcd.kv.compact({ revision: rev, physical: true });
  } finally {
    etcd.close();
  }
  const changesBefore = changes;
  await proxy.restore();

  // Back: the watch from the old version gets 410 Gone, and the informer lists again.
  await waitFor(
    async () => {
      const names = source
        .list()
        .map((g) => g.name)
        .sort();
      return names.join() === 'before,while-cut' ? true : undefined;
    },
    'the snapshot after the relist',
    30_000,
  );
  expect(source.stats.lists).toBeGreaterThanOrEqual(2);
  expect(changes).toBeGreaterThan(changesBefore);
  // And it watches again afterwards.
  await env().kubectl(['apply', '-f', '-'], { input: group('after') });
  await waitFor(
    async () => (source.list().some((g) => g.name === 'after') ? true : undefined),
    'the watch event for "after"',
  );
}, 120_000);

test('a status patch the source wrote itself does not wake the reconciler (generation check); a spec edit does', async () => {
  await env().kubectl(['apply', '-f', '-'], { input: group('gen') });
  const source = new KubernetesSource({
    kubeConfig: loadKubeConfig(env().kubeconfigPath),
    log: silentLogger(),
    clock: realClock,
    instance: 'test',
  });
  const own = new AbortController();
  let changes = 0;
  try {
    await source.start(own.signal, () => changes++);
    await waitFor(async () => {
      const r = await env().kubectl(['get', 'fg', 'gen', '-o', 'jsonpath={.metadata.finalizers}']);
      return r.stdout.includes('vipwarden.io/release') ? true : undefined;
    }, 'the finalizer on "gen"');
    // The finalizer's own update event is worth a pass; let it arrive before counting.
    await waitFor(
      async () => (source.list().some((g) => g.name === 'gen') && changes > 0 ? true : undefined),
      'gen in the snapshot',
    );
    await new Promise((r) => setTimeout(r, 1000));
    const before = changes;
    const skippedBefore = source.stats.skippedUpdates;
    const sg = source.list().find((g) => g.name === 'gen')!;
    await source.report('gen', { source: sg });
    await waitFor(async () => {
      const r = await env().kubectl(['get', 'fg', 'gen', '-o', 'jsonpath={.status.phase}']);
      return r.stdout === 'Pending' ? true : undefined;
    }, 'the status written');
    await waitFor(
      async () => (source.stats.skippedUpdates > skippedBefore ? true : undefined),
      'the status update event',
    );
    expect(changes).toBe(before);

    await env().kubectl(['patch', 'fg', 'gen', '--type=merge', '-p', '{"spec":{"nodes":[{"name":"node2"}]}}']);
    await waitFor(async () => (changes > before ? true : undefined), 'a pass after the spec edit');
  } finally {
    own.abort();
  }
}, 120_000);
