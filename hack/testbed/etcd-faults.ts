// Faults of the arbiter for the failsafe tests and the benchmark (issue 12): every etcd member stopped and started
// again on its data, and one node cut from etcd while its LAN stays up.
//
// etcd runs in the root namespace (etcd.ts) and the agents reach it on the bridge address (cluster.ts): a node is cut
// by iptables in its own namespace, dropping its packets to etcd's client ports and etcd's packets back. The LAN
// (peers, the client, the sampler) is untouched, and so are the controllers (root namespace, 127.0.0.1).
import type { EtcdCluster } from './etcd-types.js';
import type { NsRef, Testbed } from './testbed.js';

/** SIGKILLs every running member (the data stays): etcd is gone for everyone. */
export async function stopEtcdMembers(etcd: EtcdCluster): Promise<void> {
  await Promise.all(etcd.members.map((_, i) => etcd.kill(i, 'SIGKILL')));
}

/**
 * Starts every stopped member again on its data, all at once (one member of three alone has no quorum and never
 * turns healthy), and waits until each is healthy (etcd.restart's bound: 30 s by default).
 */
export async function startEtcdMembers(etcd: EtcdCluster): Promise<void> {
  await Promise.all(etcd.members.map((m, i) => (m.running ? Promise.resolve() : etcd.restart(i))));
}

/** How a cut looks to the node: `drop` stalls its connections; `reject` refuses them at once (a TCP reset), as a
 *  stopped etcd does, so that the node reconnects as soon as the cut ends (no SYN retransmission back-off). */
export type CutMode = 'drop' | 'reject';

/** The iptables rules that cut a node from etcd: [chain, rule] pairs, both directions of every client port. */
function cutRules(tb: Testbed, etcd: EtcdCluster, mode: CutMode = 'drop'): string[][] {
  const ports = etcd.members.map((m) => String(m.clientPort)).join(',');
  const tcp = ['-p', 'tcp', '-m', 'multiport'];
  const out = mode === 'reject' ? ['REJECT', '--reject-with', 'tcp-reset'] : ['DROP'];
  return [
    ['OUTPUT', ...tcp, '-d', tb.bridgeIp, '--dports', ports, '-j', ...out],
    ['INPUT', ...tcp, '-s', tb.bridgeIp, '--sports', ports, '-j', 'DROP'],
  ];
}

/** Whether the node is cut from etcd now (its rules are in place). */
export async function isCutFromEtcd(
  tb: Testbed,
  etcd: EtcdCluster,
  node: NsRef,
  mode: CutMode = 'drop',
): Promise<boolean> {
  for (const r of cutRules(tb, etcd, mode)) {
    const res = await tb.exec(node, ['iptables', '-w', '5', '-C', ...r], { allowFailure: true, timeoutMs: 10_000 });
    if (res.exitCode !== 0) return false;
  }
  return true;
}

/** Cuts the node from etcd (idempotent): its agent's connections stall, new ones are never made. LAN stays up. */
export async function cutFromEtcd(tb: Testbed, etcd: EtcdCluster, node: NsRef, mode: CutMode = 'drop'): Promise<void> {
  if (await isCutFromEtcd(tb, etcd, node, mode)) return;
  for (const r of cutRules(tb, etcd, mode))
    await tb.exec(node, ['iptables', '-w', '5', '-I', ...r], { timeoutMs: 10_000 });
}

/** Lets the node reach etcd again (idempotent; every copy of the rules goes). */
export async function restoreEtcd(tb: Testbed, etcd: EtcdCluster, node: NsRef, mode: CutMode = 'drop'): Promise<void> {
  for (const r of cutRules(tb, etcd, mode))
    for (let i = 0; i < 10; i++) {
      const res = await tb.exec(node, ['iptables', '-w', '5', '-D', ...r], { allowFailure: true, timeoutMs: 10_000 });
      if (res.exitCode !== 0) break;
    }
}
