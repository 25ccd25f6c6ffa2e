// vipwarden-agent --config /etc/vipwarden/agent.yaml [--log-level debug]
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { realClock } from '../common/clock.js';
import { connectEtcd } from '../common/etcd.js';
import { realExec } from '../common/exec.js';
import { createLogger } from '../common/log.js';
import { Agent } from './agent.js';
import { AnnounceResource, CommandAnnouncer } from './announce.js';
import { loadAgentConfig } from './config.js';
import { extraResources } from './extras.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** vw-before, built next to this file by `npm run build` (hack/build-native.sh), or where the config says. */
function deadlineExecPath(configured: string | undefined): string {
  const path = configured ?? fileURLToPath(new URL('./vw-before', import.meta.url));
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(
      `${path} is missing or not executable: build it with "npm run build" (needs a C compiler), or set deadlineExec in the agent config`,
    );
  }
  return path;
}

async function main(): Promise<void> {
  const path = arg('--config') ?? '/etc/vipwarden/agent.yaml';
  const config = await loadAgentConfig(path);
  const log = createLogger({
    name: 'vipwarden-agent',
    level: arg('--log-level') ?? config.logLevel,
    base: { node: config.node },
  });
  const client = connectEtcd({ endpoints: config.etcd.endpoints });
  const extras = await extraResources({ config, exec: realExec, clock: realClock, log });
  const announcer = new CommandAnnouncer(realExec, log, extras.sendNa, extras.onAnnounced);
  const agent = new Agent({
    config,
    client,
    exec: realExec,
    clock: realClock,
    log,
    resources: [new AnnounceResource(announcer, realClock), ...extras.resources],
    metrics: extras.metrics,
    lvs: extras.lvs,
    deadlineExec: deadlineExecPath(config.deadlineExec),
  });
  extras.setReady?.(() => agent.ready());
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    const hard = setTimeout(() => process.exit(1), config.shutdownGraceMs + 5000);
    hard.unref();
    agent
      .stop()
      .then(() => extras.close())
      .then(() => client.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await agent.start();
  log.info({ etcd: config.etcd.endpoints, interface: config.interface }, 'agent started');
}

main().catch((err) => {
  console.error(`vipwarden-agent: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
