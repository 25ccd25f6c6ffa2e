// Small helpers around @kubernetes/client-node: loading a kubeconfig, reading an API error's status code and text,
// and the few FailoverGroup and Event calls the source makes.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
} from '@kubernetes/client-node';
import type { Clock } from '../../common/clock.js';
import { API_GROUP, API_VERSION, PLURAL } from '../../crds/failovergroup.js';
import type { FailoverGroupObject } from './kube-objects.js';

/** Loads a kubeconfig: the file named in the controller config, else in-cluster, else the default (KUBECONFIG). */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

export function errText(err: unknown): string {
  const code = statusCode(err);
  const body = (err as { body?: unknown } | null)?.body;
  const msg = err instanceof Error ? err.message : String(err);
  return code !== undefined ? `HTTP ${code}: ${typeof body === 'string' ? body.slice(0, 500) : msg}` : msg;
}

export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const FG = { group: API_GROUP, version: API_VERSION, plural: PLURAL };

/** The calls the Kubernetes source makes, with their error handling. */
export class FailoverGroupApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly clock: Clock,
  ) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async list(): Promise<{ items: FailoverGroupObject[]; metadata?: { resourceVersion?: string } }> {
    return (await this.custom.listClusterCustomObject(FG)) as {
      items: FailoverGroupObject[];
      metadata?: { resourceVersion?: string };
    };
  }

  /** resourceVersion makes the merge patch conditional: a concurrent change of the list is not overwritten. */
  async patchFinalizers(name: string, finalizers: string[], resourceVersion: string | undefined): Promise<void> {
    await this.custom.patchClusterCustomObject(
      { ...FG, name, body: { metadata: { finalizers, resourceVersion } } },
      MERGE_PATCH,
    );
  }

  /** A status merge patch, tried up to three times on transient errors; a group that is gone is not an error. */
  async patchStatus(name: string, status: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.custom.patchClusterCustomObjectStatus({ ...FG, name, body: { status } }, MERGE_PATCH);
        return;
      } catch (err) {
        const code = statusCode(err);
        if (code === 404) return;
        const transient = code === undefined || code === 409 || code === 429 || code >= 500;
        if (!transient || attempt >= 3 || signal?.aborted) throw new Error(`status of ${name}: ${errText(err)}`);
        await this.clock.sleep(200 * attempt, signal);
      }
    }
  }

  async postEvent(namespace: string, e: CoreV1Event): Promise<void> {
    try {
      await this.core.createNamespacedEvent({ namespace, body: e });
    } catch (err) {
      // The same transition reported twice (a pass repeated after a conflict) is one Event.
      if (statusCode(err) === 409) return;
      throw new Error(`event for ${e.involvedObject.name}: ${errText(err)}`);
    }
  }
}
