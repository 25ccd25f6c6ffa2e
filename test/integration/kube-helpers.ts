// Small helpers shared by the Kubernetes integration and e2e tests (on top of test/harness/kube.ts).
import { join } from 'node:path';
import { REPO } from '../../hack/testbed/cluster.js';
import type { KubeEnv } from '../harness/kube.js';

export const CRD_FILE = join(REPO, 'crds', 'failovergroup.crd.yaml');
export const DEPLOY_DIR = join(REPO, 'deploy', 'kubernetes');

/** Polls until `check` returns something, bounded (a hang-catching bound, not a timing assertion). */
export async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
  );
}

/** Applies the checked-in CRD and waits until kubectl can use it (Established, and in discovery). */
export async function applyCrd(kube: KubeEnv, file = CRD_FILE): Promise<void> {
  await kube.kubectl(['apply', '-f', file]);
  await kube.kubectl(['wait', '--for=condition=Established', 'crd/failovergroups.vipwarden.io', '--timeout=60s']);
  await waitFor(
    async () => ((await kube.kubectl(['get', 'fg'], { allowFailure: true })).exitCode === 0 ? true : undefined),
    'fg in discovery',
  );
}

/** A FailoverGroup as `kubectl get fg NAME -o json` shows it (T: the fields the test reads), undefined when absent. */
export async function getFg<T>(kube: KubeEnv, name: string): Promise<T | undefined> {
  const r = await kube.kubectl(['get', 'fg', name, '-o', 'json'], { allowFailure: true });
  if (r.exitCode !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as T;
}

/** The Events of an object in the default namespace, as kubectl lists them. */
export async function objectEvents(
  kube: KubeEnv,
  name: string,
): Promise<{ reason: string; message: string; type: string }[]> {
  const r = await kube.kubectl([
    'get',
    'events',
    '-n',
    'default',
    '--field-selector',
    `involvedObject.name=${name}`,
    '-o',
    'json',
  ]);
  return (JSON.parse(r.stdout) as { items: { reason: string; message: string; type: string }[] }).items;
}

/**
 * The API server of a test file: `start()` in beforeAll (as root: the build cache and etcd need it), `get()` in the
 * tests (a clear error when the start failed), `stop()` in afterAll.
 */
export function kubeSlot(): {
  start(run: () => Promise<KubeEnv>): Promise<KubeEnv>;
  get(): KubeEnv;
  stop(): Promise<void>;
} {
  let kube: KubeEnv | undefined;
  return {
    async start(run) {
      if (process.getuid?.() !== 0)
        throw new Error('the integration tier must run as root (kube-apiserver build cache, etcd)');
      kube = await run();
      return kube;
    },
    get() {
      if (!kube) throw new Error('the Kubernetes environment did not start (see the beforeAll error above)');
      return kube;
    },
    async stop() {
      await kube?.stop();
    },
  };
}
