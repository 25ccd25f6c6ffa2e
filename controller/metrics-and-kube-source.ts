// The two optional parts wired into the controller at start: the metrics server (/metrics, /healthz, /readyz) and
// the Kubernetes source with its status sink, loaded only when the config names it.
import { realClock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { MetricsServer } from '../common/metrics-server.js';
import type { ControllerConfig } from './config.js';
import { NO_CONTROLLER_METRICS, type ControllerMetrics } from './metrics.js';
import { PromControllerMetrics } from './prom-metrics.js';
import type { GroupSource, StatusSink } from './sources/types.js';

export interface MetricsAndKubeSource {
  metrics: ControllerMetrics;
  kubernetes?: () => Promise<{ source: GroupSource; status: StatusSink }>;
  /** Binds /readyz to the controller once it exists (ready = connected to etcd, leading or standing by). */
  setReady?: (ready: () => boolean) => void;
  close(): Promise<void>;
}

export async function metricsAndKubeSource(deps: {
  config: ControllerConfig;
  log: Logger;
}): Promise<MetricsAndKubeSource> {
  const { config, log } = deps;
  const closers: (() => Promise<void>)[] = [];
  let metrics: ControllerMetrics = NO_CONTROLLER_METRICS;
  let setReady: MetricsAndKubeSource['setReady'];

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
        await c().catch((err: unknown) => log.warn({ err }, 'closing the metrics server failed'));
    },
  };
}
