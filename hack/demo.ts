// npm run demo: etcd, 3 nodes in network namespaces each running nginx that serves its own name, an agent per
// node, a controller, and an example FailoverGroup. It shows the VIP answering in the client namespace, kills the
// holder (its link goes down and its agent dies, as when a machine crashes), shows the VIP answering from the next
// node, and tears everything down.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderEvents, renderStatus } from '../cli/main.js';
import { startCluster, webGroup, type Cluster } from './testbed/cluster.js';
import { installSignalHandlers, monoMs, outageAround, requireRoot, startProbe, startSampler } from './testbed/index.js';

const say = (s = '') => console.log(s);
const step = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);

async function main(): Promise<void> {
  requireRoot('the demo');
  installSignalHandlers();
  step('Starting etcd, 3 nodes (network namespaces with nginx), one agent per node and a controller');
  const c: Cluster = await startCluster({ name: 'demo', nodes: 3, prettyLogs: true });
  try {
    const vip = c.tb.vip(0);
    for (const n of c.tb.nodes) say(`  ${n.name}: ${n.ip} (namespace ${n.netns})`);
    say(`  client: ${c.tb.client.ip} (namespace ${c.tb.client.netns})`);
    say(`  etcd: ${c.etcd.endpoints.join(', ')}; manifests: ${c.groupsDir}`);
    say(
      `  etcd ${c.etcd.binaries.version}${c.etcd.tls ? `, TLS with a client certificate per component (CA ${c.etcd.tls.ca})` : ''}`,
    );

    step(
      `Applying FailoverGroup "web": VIP ${vip}/24, node1 (priority 100) > node2 (90) > node3 (80), nginx checked every 100 ms`,
    );
    const path = c.applyGroup(
      webGroup({
        vips: [`${vip}/24`],
      }),
    );
    say(readFileSync(path, 'utf8').replace(/^/gm, '    '));
    const sampler = await startSampler(c.tb, { periodMs: 5 });
    await sampler.waitForHolder(vip, 'node1', 30_000);
    // Port 80, every 10 ms, 100 ms timeout: startProbe's defaults.
    const probe = await startProbe(c.tb, { target: vip, maxDurationMs: 120_000 });
    const first = await probe.waitFor((s) => s.ok, 10_000, { includePast: true });
    say(`  the client asks http://${vip}/ over a fresh TCP connection every 10 ms: answered by ${first.body}`);
    for (const l of renderStatus(await c.status())) say(`  ${l}`);

    const holder = (await c.holderOf('web')) ?? 'node1';
    step(`Killing the holder, ${holder}: its link goes down and its agent dies (kill -9)`);
    const t = monoMs();
    await c.tb.cutLink(holder);
    c.agents.get(holder)?.kill('SIGKILL');
    const after = await probe.waitFor((s) => s.ok && s.body !== holder, 30_000);
    const o = outageAround(probe.samples(), t);
    say(`  the VIP now answers from ${after.body}; the client saw no answer for ${Math.round(o.durationMs)} ms`);
    say(`  (the dead node's address expired by itself in its kernel; the controller waited for its lease to end)`);
    for (const l of renderStatus(await c.status())) say(`  ${l}`);

    step('Failover history (vipwarden events)');
    for (const l of renderEvents(await c.events())) say(`  ${l}`);

    const overlaps = sampler.overlaps(vip);
    step('Safety');
    say(`  the sampler read every node's addresses ${sampler.pollCount} times (every 5 ms)`);
    say(`  moments with the VIP on two nodes at once: ${overlaps.intervals.length} (${overlaps.totalMs} ms)`);
    await probe.stop();
    await sampler.stop();
    say(`\n  component logs: ${join(c.tb.dir)} (removed at teardown unless VIPWARDEN_KEEP_TESTBED_LOGS=1)`);
  } finally {
    step('Tearing everything down');
    await c.destroy();
    say('  done');
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
