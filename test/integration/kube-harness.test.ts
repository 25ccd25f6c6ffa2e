// The Kubernetes test harness itself: a real kube-apiserver with RBAC, a CRD, and ServiceAccount tokens.
// The first run on a machine builds kube-apiserver (hack/kube/build.sh), which takes many minutes.
import { existsSync } from 'node:fs';
import { isAlive } from '../../hack/testbed/util.js';
import { startKube, type KubeEnv } from '../harness/kube.js';

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.vipwarden.io
spec:
  group: example.vipwarden.io
  scope: Cluster
  names: { plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: { type: integer, minimum: 1 }
`;

const WIDGET = `
apiVersion: example.vipwarden.io/v1
kind: Widget
metadata: { name: w1 }
spec: { size: 3 }
`;

let kube: KubeEnv | undefined;

function env(): KubeEnv {
  if (!kube) throw new Error('the Kubernetes environment did not start (see the beforeAll error above)');
  return kube;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('the integration tier must run as root: the kube-apiserver build cache is /var/cache/vipwarden');
  }
  const t0 = Date.now();
  kube = await startKube(); // builds kube-apiserver on the first run (many minutes), then cached
  console.log(`kube-apiserver ${kube.version} ready at ${kube.server} after ${Date.now() - t0} ms`);
}, 30 * 60_000);

afterAll(async () => {
  await kube?.stop();
}, 60_000);

test('kubectl reaches the pinned server version', async () => {
  const r = await env().kubectl(['version', '-o', 'json']);
  const v = JSON.parse(r.stdout) as {
    clientVersion?: { gitVersion?: string };
    serverVersion?: { gitVersion?: string };
  };
  expect(v.serverVersion?.gitVersion).toBe(env().version);
  expect(v.clientVersion?.gitVersion).toMatch(/^v1\.\d+\./);
});

test('the admin kubeconfig may do everything', async () => {
  const r = await env().kubectl(['auth', 'can-i', '*', '*']);
  expect(r.stdout.trim()).toBe('yes');
  const who = await env().kubectl(['auth', 'whoami', '-o', 'json']);
  const review = JSON.parse(who.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
  expect(review.status.userInfo.username).toBe('vipwarden-admin');
  expect(review.status.userInfo.groups).toContain('system:masters');
});

test('a CRD can be applied and an object of it created and read', async () => {
  await env().kubectl(['apply', '-f', '-'], { input: CRD });
  await env().kubectl(['wait', '--for=condition=Established', 'crd/widgets.example.vipwarden.io', '--timeout=60s']);
  // Discovery of a fresh CRD can lag a moment behind Established.
  let created = false;
  for (let i = 0; i < 50 && !created; i++) {
    const r = await env().kubectl(['apply', '-f', '-'], { input: WIDGET, allowFailure: true });
    created = r.exitCode === 0;
    if (!created) await new Promise((res) => setTimeout(res, 200));
  }
  expect(created).toBe(true);
  const got = await env().kubectl(['get', 'widget', 'w1', '-o', 'json']);
  expect((JSON.parse(got.stdout) as { spec: { size: number } }).spec.size).toBe(3);
  // The schema is enforced.
  const bad = await env().kubectl(['apply', '-f', '-'], {
    input: WIDGET.replace('w1', 'w0').replace('size: 3', 'size: 0'),
    allowFailure: true,
  });
  expect(bad.exitCode).not.toBe(0);
  expect(bad.stderr).toMatch(/spec\.size/);
});

test('RBAC is on: a ServiceAccount without bindings is forbidden until it is bound', async () => {
  const sa = await env().createServiceAccountKubeconfig('rbac-test', 'nobody');

  const who = await env().kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: sa });
  expect(who.stdout).toBe('system:serviceaccount:rbac-test:nobody');

  const denied = await env().kubectl(['get', 'widgets.example.vipwarden.io'], { kubeconfig: sa, allowFailure: true });
  expect(denied.exitCode).not.toBe(0);
  expect(denied.stderr).toMatch(/Forbidden/);
  expect(denied.stderr).toContain('system:serviceaccount:rbac-test:nobody');

  await env().kubectl([
    'create',
    'clusterrole',
    'widget-reader',
    '--verb=get,list',
    '--resource=widgets.example.vipwarden.io',
  ]);
  await env().kubectl([
    'create',
    'clusterrolebinding',
    'nobody-reads-widgets',
    '--clusterrole=widget-reader',
    '--serviceaccount=rbac-test:nobody',
  ]);
  const allowed = await env().kubectl(['get', 'widgets.example.vipwarden.io', '-o', 'name'], { kubeconfig: sa });
  expect(allowed.stdout.trim()).toBe('widget.example.vipwarden.io/w1');
  const stillDenied = await env().kubectl(['delete', 'widget', 'w1'], { kubeconfig: sa, allowFailure: true });
  expect(stillDenied.stderr).toMatch(/Forbidden/);
});

test(
  'client-certificate admin auth works, and stop() leaves no process and no directory behind',
  async () => {
    const second = await startKube({ adminAuth: 'client-certificate' });
    try {
      const who = await second.kubectl(['auth', 'whoami', '-o', 'json']);
      const review = JSON.parse(who.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
      expect(review.status.userInfo.username).toBe('vipwarden-admin');
      expect(review.status.userInfo.groups).toContain('system:masters');
    } finally {
      await second.stop();
    }
    expect(isAlive(second.pids.apiserver)).toBe(false);
    expect(isAlive(second.pids.etcd)).toBe(false);
    expect(existsSync(second.dir)).toBe(false);
  },
  5 * 60_000,
);
