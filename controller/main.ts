// vipwarden-controller [--config /etc/vipwarden/controller.yaml] [--log-level debug] [--allow-unsupported-etcd]
import { realClock } from '../common/clock.js';
import { daemonCommandLine } from '../common/command-line.js';
import { runDaemon, stopOnSignals } from '../common/shutdown.js';
import { checkEtcdVersion, connectEtcd } from '../common/etcd.js';
import { assertSecretFiles, secretFilesOf } from '../common/secret-file.js';
import { Keys } from '../common/keyspace.js';
import { createLogger } from '../common/log.js';
import { loadControllerConfig } from './config.js';
import { Controller } from './controller.js';
import { metricsAndKubeSource } from './metrics-and-kube-source.js';
import { RejectedInEtcd } from './rejected-status.js';
import { DirectorySource } from './sources/directory.js';
import { NO_STATUS, type GroupSource, type StatusSink } from './sources/types.js';

const USAGE = `usage: vipwarden-controller [--config FILE] [--log-level LEVEL] [--allow-unsupported-etcd]
  --config FILE             controller config (default /etc/vipwarden/controller.yaml)
  --log-level LEVEL         trace, debug, info, warn, error (default: the config's logLevel)
  --allow-unsupported-etcd  run against an etcd older than the minimum (lease bugs: not safe), with a warning
  --help, --version`;

const OPTIONS = {
  config: { type: 'string' },
  'log-level': { type: 'string' },
  'allow-unsupported-etcd': { type: 'boolean' },
} as const;

async function main(): Promise<void> {
  const args = daemonCommandLine('vipwarden-controller', USAGE, process.argv.slice(2), OPTIONS);
  const config = await loadControllerConfig(args.config ?? '/etc/vipwarden/controller.yaml');
  assertSecretFiles(secretFilesOf(config));
  const log = createLogger({ name: 'vipwarden-controller', level: args['log-level'] ?? config.logLevel });
  // Refuse an etcd with the lease bugs the fencing cannot live with (common/etcd.ts, ETCD_MINIMUM).
  await checkEtcdVersion(config.etcd, log, {
    minimumVersion: config.etcd.minimumVersion,
    allowUnsupportedVersion: config.etcd.allowUnsupportedVersion || args['allow-unsupported-etcd'] === true,
  });
  const client = connectEtcd(config.etcd);
  const rejected = new RejectedInEtcd({ client, keys: new Keys(config.etcd.prefix), clock: realClock, log });
  const extras = await metricsAndKubeSource({ config, log });
  let source: GroupSource;
  let status: StatusSink | undefined;
  if ('directory' in config.source) {
    source = rejected.source(new DirectorySource(config.source.directory, log));
  } else {
    const k = await extras.kubernetes?.();
    if (!k) throw new Error('the kubernetes source is not available in this build');
    source = rejected.source(k.source);
    status = k.status;
  }
  const controller = new Controller({
    config,
    client,
    source,
    status: rejected.sink(status ?? NO_STATUS),
    clock: realClock,
    log,
    metrics: extras.metrics,
  });
  extras.setReady?.(() => controller.ready());
  stopOnSignals({
    log,
    stop: async () => {
      await controller.stop();
      await extras.close();
      client.close();
    },
  });
  await controller.start();
  log.info({ id: config.id, etcd: config.etcd.endpoints }, 'controller started');
}

runDaemon('vipwarden-controller', main);
