// Optional parts wired into the controller at start: metrics server, the Kubernetes source and status sink.
import { realClock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { MetricsServer } from '../common/metrics-server.js';
import type { ControllerConfig } from './config.js';
import { NO_CONTROLLER_METRICS, type ControllerMetrics } from './metrics.js';
import { PromControllerMetrics } from './prom-metrics.js';
import type { GroupSource, StatusSink } from './sources/types.js';

export interface ControllerExtras {
  metrics: ControllerMetrics;
  kubernetes?: () => Promise<{ source: GroupSource; status: StatusSink }>;
  /** Binds /readyz to the controller once it exists (ready = connected to etcd, leading or standing by). */
  setReady?: (ready: () => boolean) => void;
  close(): Promise<void>;
}

export async function controllerExtras(deps: { config: ControllerConfig; log: Logger }): Promise<ControllerExtras> {
  const { config, log } = deps;
  const closers: (() => Promise<void>)[] = [];
  let metrics: ControllerMetrics = NO_CONTROLLER_METRICS;
  let setReady: ControllerExtras['setReady'];

  // Metrics: /metrics, /healthz, /readyz on metrics.listen (no metrics section: no server), leading or not.
  if (config.metrics) {
    const prom = new PromControllerMetrics({ id: config.id });
    const server = new MetricsServer({
      listen: config.metrics.listen,
      registry: prom.registry,
      log,
      ready: () => prom.etcdConnected,
    });
    await server.start();
    metrics = prom;
    setReady = (ready) => server.setReady(ready);
    closers.push(() => server.stop());
  }

  // The Kubernetes source: the kubeconfig named in source.kubernetes, else in-cluster (ServiceAccount), else KUBECONFIG.
  const kubernetes =
    'kubernetes' in config.source
      ? async () => {
          // Loaded only when used: the Kubernetes client takes over a second to load, and a bare-VM controller
          // (directory source) would pay it on every start (scale benchmark).
          const { KubernetesSource, loadKubeConfig } = await import('./sources/kubernetes.js');
          const k = (config.source as { kubernetes: { kubeconfig?: string } }).kubernetes;
          const source = new KubernetesSource({
            kubeConfig: loadKubeConfig(k.kubeconfig),
            log,
            clock: realClock,
            instance: config.id,
          });
          return { source, status: source };
        }
      : undefined;

  return {
    metrics,
    setReady,
    kubernetes,
    close: async () => {
      for (const c of closers.reverse())
        await c().catch((err) => log.warn({ err: String(err) }, 'closing an extra failed'));
    },
  };
}
