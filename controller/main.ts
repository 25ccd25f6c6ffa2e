// vipwarden-controller --config /etc/vipwarden/controller.yaml [--log-level debug]
import { realClock } from '../common/clock.js';
import { connectEtcd } from '../common/etcd.js';
import { createLogger } from '../common/log.js';
import { loadControllerConfig } from './config.js';
import { Controller } from './controller.js';
import { metricsAndKubeSource } from './metrics-and-kube-source.js';
import { DirectorySource } from './sources/directory.js';
import type { GroupSource, StatusSink } from './sources/types.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const config = await loadControllerConfig(arg('--config') ?? '/etc/vipwarden/controller.yaml');
  const log = createLogger({ name: 'vipwarden-controller', level: arg('--log-level') ?? config.logLevel });
  const client = connectEtcd({ endpoints: config.etcd.endpoints });
  const extras = await metricsAndKubeSource({ config, log });
  let source: GroupSource;
  let status: StatusSink | undefined;
  if ('directory' in config.source) {
    source = new DirectorySource(config.source.directory, log);
  } else {
    const k = await extras.kubernetes?.();
    if (!k) throw new Error('the kubernetes source is not available in this build');
    source = k.source;
    status = k.status;
  }
  const controller = new Controller({ config, client, source, status, clock: realClock, log, metrics: extras.metrics });
  extras.setReady?.(() => controller.ready());
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    controller
      .stop()
      .then(() => extras.close())
      .then(() => client.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await controller.start();
  log.info({ id: config.id, etcd: config.etcd.endpoints }, 'controller started');
}

main().catch((err) => {
  console.error(`vipwarden-controller: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
