// Optional parts wired into the controller at start: metrics server, the Kubernetes source and status sink.
import type { Logger } from '../common/log.js';
import type { ControllerConfig } from './config.js';
import { NO_CONTROLLER_METRICS, type ControllerMetrics } from './metrics.js';
import type { GroupSource, StatusSink } from './sources/types.js';

export interface ControllerExtras {
  metrics: ControllerMetrics;
  kubernetes?: () => Promise<{ source: GroupSource; status: StatusSink }>;
  close(): Promise<void>;
}

export async function controllerExtras(_deps: { config: ControllerConfig; log: Logger }): Promise<ControllerExtras> {
  return { metrics: NO_CONTROLLER_METRICS, close: async () => undefined };
}
