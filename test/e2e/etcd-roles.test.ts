// End to end with least-privilege etcd users (issue 10, item 2): deploy/etcd/setup.sh gives each agent a role that
// writes only its own keys, the controllers theirs, the CLI user an operator role; authentication is on and every
// component logs in with its own client certificate over TLS. Placement, a planned move through the CLI and a
// failover after SIGKILL work; no component hit a permission error; the VIP is never on two nodes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, jest, test } from '@jest/globals';
import { REPO, startCluster, THREE_NODES, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';
import { run } from '../../hack/testbed/util.js';

jest.setTimeout(180_000);

let c: Cluster | undefined;
let sampler: Sampler | undefined;
afterAll(async () => {
  await sampler?.stop().catch(() => undefined);
  await c?.destroy();
});

function logsOf(cl: Cluster): string {
  const procs = [...cl.agents.values(), ...cl.controllers].filter((p) => p !== undefined);
  return procs
    .flatMap((p) => [p.stdoutLog, p.stderrLog])
    .filter((f): f is string => !!f)
    .map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    })
    .join('\n');
}

test('agents, controller and CLI under their own etcd roles: placement, move, failover; no permission denied', async () => {
  requireRoot('the e2e tier');
  c = await startCluster({ name: 'etcdroles', etcdRoles: true });
  const cl = c;
  // Authentication really is on: a certificate whose CN is no etcd user reads nothing.
  const stranger = await run(
    [cl.etcd.binaries.etcdctl, `--endpoints=${cl.etcd.endpoints[0]}`, ...cl.etcd.etcdctlFlags('stranger'), 'get', '/'],
    { allowFailure: true },
  );
  expect(stranger.exitCode).not.toBe(0);

  const vip = cl.tb.vip(0);
  sampler = await startSampler(cl.tb, { periodMs: 5 });
  cl.applyGroup(
    webGroup({
      vips: [`${vip}/24`],
      nodes: THREE_NODES,
    }),
  );
  await sampler.waitForHolder(vip, 'node1', 30_000);

  // The operator moves the group with the CLI as user "cli".
  const cli = (...args: string[]) =>
    run([process.execPath, join(REPO, 'bin', 'vipwarden.js'), ...args, ...cl.etcd.cliFlags({ user: 'cli' })], {
      allowFailure: true,
      timeoutMs: 30_000,
    });
  const moved = await cli('move', 'web', 'node2');
  expect(moved.stderr).toBe('');
  expect(moved.exitCode).toBe(0);
  await sampler.waitForHolder(vip, 'node2', 20_000);
  expect((await cli('move', 'web', '--unpin')).exitCode).toBe(0);
  await sampler.waitForHolder(vip, 'node1', 20_000);

  // Hard failure of the holder: its lease ends, node2 takes over.
  cl.agents.get('node1')?.kill('SIGKILL');
  await sampler.waitForHolder(vip, 'node2', 30_000);
  const status = await cli('status');
  expect(status.exitCode).toBe(0);
  expect(status.stdout).toMatch(/web/);

  // A running agent's user reads only what an agent needs (deploy/etcd/setup.sh): not the events, not another node's
  // releases, and yet every agent above worked (no permission denied in any log).
  for (const key of [`${cl.prefix}events/`, `${cl.prefix}released/node1/`, `${cl.prefix}leader`]) {
    const peek = await run(
      [
        cl.etcd.binaries.etcdctl,
        `--endpoints=${cl.etcd.endpoints[0]}`,
        ...cl.etcd.etcdctlFlags('node2'),
        'get',
        '--prefix',
        key,
      ],
      { allowFailure: true },
    );
    expect([key, peek.exitCode !== 0 && /permission denied/i.test(peek.stderr)]).toEqual([key, true]);
  }
  expect(logsOf(cl)).not.toMatch(/permission denied/i);
  const overlaps = sampler.overlaps(vip);
  expect(overlaps.intervals).toEqual([]);
});
