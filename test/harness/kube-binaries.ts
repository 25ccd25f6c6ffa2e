// The kube-apiserver and kubectl binaries for the test Kubernetes API (kube.ts): a cached build of
// k8s.io/kubernetes made by hack/kube/build.sh (see docs/kubernetes-testing.md).
import { execa } from 'execa';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandError } from '../../common/exec.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = join(REPO_ROOT, 'hack', 'kube', 'build.sh');

export interface KubeBinaries {
  /** The pinned Kubernetes version, e.g. v1.37.1. */
  version: string;
  kubeApiserver: string;
  /** The built kubectl, or the one on PATH when it is within one minor version of the pin. */
  kubectl: string;
}

let binariesPromise: Promise<KubeBinaries> | undefined;

/**
 * Finds (building them on first use) kube-apiserver and kubectl by running hack/kube/build.sh, which does nothing
 * when the pinned version is already in the cache. The first build takes many minutes; its progress goes to stderr.
 * Memoized per process; a failure is not memoized.
 */
export function kubeBinaries(): Promise<KubeBinaries> {
  binariesPromise ??= buildKubeBinaries().catch((e: unknown) => {
    binariesPromise = undefined;
    throw e;
  });
  return binariesPromise;
}

async function buildKubeBinaries(): Promise<KubeBinaries> {
  const argv = ['bash', BUILD_SCRIPT];
  const r = await execa('bash', [BUILD_SCRIPT], {
    reject: false,
    stdin: 'ignore',
    // Progress to the terminal as it happens (a first build is long), and kept for the error message.
    stderr: ['pipe', 'inherit'],
    timeout: 60 * 60_000,
  });
  const stderr = String(r.stderr ?? '');
  if (r.exitCode !== 0) {
    const tail = stderr.trimEnd().split('\n').slice(-40).join('\n');
    throw new CommandError(argv, r.exitCode, `hack/kube/build.sh could not provide kube-apiserver:\n${tail}`);
  }
  const vars = new Map<string, string>();
  for (const line of String(r.stdout ?? '').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  const version = vars.get('KUBE_VERSION');
  const kubeApiserver = vars.get('KUBE_APISERVER');
  const kubectl = vars.get('KUBECTL');
  if (!version || !kubeApiserver || !kubectl) {
    throw new Error(
      `hack/kube/build.sh printed no KUBE_VERSION/KUBE_APISERVER/KUBECTL lines; stdout was:\n${r.stdout}`,
    );
  }
  return { version, kubeApiserver, kubectl };
}
