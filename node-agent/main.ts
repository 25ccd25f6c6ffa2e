// vipwarden-agent [--config /etc/vipwarden/agent.yaml] [--node NAME] [--log-level debug] [--allow-unsupported-etcd]
import { accessSync, constants } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { realClock } from '../common/clock.js';
import { daemonCommandLine } from '../common/command-line.js';
import { runDaemon, stopOnSignals } from '../common/shutdown.js';
import { checkEtcdVersion, connectEtcd } from '../common/etcd.js';
import { realExec } from '../common/exec.js';
import { deferrableLifetimeWorker } from '../common/kernel-lifetime.js';
import { createLogger } from '../common/log.js';
import { assertSecretFiles, secretFilesOf } from '../common/secret-file.js';
import { Agent } from './agent.js';
import { describeAllowlist } from './allowlist.js';
import { AnnounceResource, CommandAnnouncer } from './announce.js';
import { helperBeside } from './addresses.js';
import { loadAgentConfig } from './config.js';
import { resolveFence } from './fence/auto.js';
import { optionalParts } from './optional-parts.js';

const USAGE = `usage: vipwarden-agent [--config FILE] [--node NAME] [--log-level LEVEL]
  --config FILE      agent config (default /etc/vipwarden/agent.yaml)
  --node NAME        this node's name, instead of the config's node: (or VIPWARDEN_NODE, e.g. from the
                     Kubernetes downward API)
  --log-level LEVEL  trace, debug, info, warn, error (default: the config's logLevel)
  --allow-unsupported-etcd  run against an etcd older than the minimum (lease bugs: not safe), with a warning
  --help, --version`;

const OPTIONS = {
  config: { type: 'string' },
  node: { type: 'string' },
  'log-level': { type: 'string' },
  'allow-unsupported-etcd': { type: 'boolean' },
} as const;

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
  const args = daemonCommandLine('vipwarden-agent', USAGE, process.argv.slice(2), OPTIONS);
  const node = args.node ?? (process.env.VIPWARDEN_NODE || undefined);
  const loaded = await loadAgentConfig(args.config ?? '/etc/vipwarden/agent.yaml', { node });
  // Credentials (MySQL option files, cloud tokens) and the etcd auth file: private to their owner, or no start.
  assertSecretFiles(secretFilesOf(loaded));
  const log = createLogger({
    name: 'vipwarden-agent',
    level: args['log-level'] ?? loaded.logLevel,
    base: { node: loaded.node },
  });
  const deadlineExec = deadlineExecPath(loaded.deadlineExec);
  // fence: auto (the default) becomes nftables or off here, before anything reads it.
  const config = await resolveFence(loaded, { exec: realExec, helper: helperBeside(deadlineExec), log });
  if (config.fence.mode === 'off' && deferrableLifetimeWorker(release()))
    log.warn(
      { kernel: release() },
      'kernel 6.13 or later: its address-lifetime worker is deferrable, so while this agent and its data-path helper ' +
        'are both stopped (a frozen node) an expired VIP can stay until a CPU wakes, past the wait the controller ' +
        'assumes; the fast fence (fence: auto or nftables, with nft installed) closes that (docs/design.md, "What the bound does not cover")',
    );
  const allowed = describeAllowlist(config);
  if (allowed.held) log.info({ vipRanges: config.vipRanges }, allowed.message);
  else log.warn(allowed.message);
  // Refuse an etcd with the lease bugs the fencing cannot live with (common/etcd.ts, ETCD_MINIMUM).
  await checkEtcdVersion(config.etcd, log, {
    minimumVersion: config.etcd.minimumVersion,
    allowUnsupportedVersion: config.etcd.allowUnsupportedVersion || args['allow-unsupported-etcd'] === true,
  });
  const client = connectEtcd(config.etcd);
  const extras = await optionalParts({ config, exec: realExec, clock: realClock, log });
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
    peer: extras.peer,
    deadlineExec,
  });
  extras.setReady?.(() => agent.ready());
  stopOnSignals({
    log,
    hardTimeoutMs: config.shutdownGraceMs + 5000,
    stop: async () => {
      await agent.stop();
      await extras.close();
      client.close();
    },
  });
  await agent.start();
  log.info({ etcd: config.etcd.endpoints, interface: config.interface }, 'agent started');
}

runDaemon('vipwarden-agent', main);
