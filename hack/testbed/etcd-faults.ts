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

/** The iptables rules that cut a node from etcd: [chain, rule] pairs, both directions of every client port. */
function cutRules(tb: Testbed, etcd: EtcdCluster): string[][] {
  const ports = etcd.members.map((m) => String(m.clientPort)).join(',');
  const tcp = ['-p', 'tcp', '-m', 'multiport'];
  return [
    ['OUTPUT', ...tcp, '-d', tb.bridgeIp, '--dports', ports, '-j', 'DROP'],
    ['INPUT', ...tcp, '-s', tb.bridgeIp, '--sports', ports, '-j', 'DROP'],
  ];
}

/** Whether the node is cut from etcd now (its rules are in place). */
export async function isCutFromEtcd(tb: Testbed, etcd: EtcdCluster, node: NsRef): Promise<boolean> {
  for (const r of cutRules(tb, etcd)) {
    const res = await tb.exec(node, ['iptables', '-w', '5', '-C', ...r], { allowFailure: true, timeoutMs: 10_000 });
    if (res.exitCode !== 0) return false;
  }
  return true;
}

/** Cuts the node from etcd (idempotent): its agent's connections stall, new ones are never made. LAN stays up. */
export async function cutFromEtcd(tb: Testbed, etcd: EtcdCluster, node: NsRef): Promise<void> {
  if (await isCutFromEtcd(tb, etcd, node)) return;
  for (const r of cutRules(tb, etcd)) await tb.exec(node, ['iptables', '-w', '5', '-I', ...r], { timeoutMs: 10_000 });
}

/** Lets the node reach etcd again (idempotent; every copy of the rules goes). */
export async function restoreEtcd(tb: Testbed, etcd: EtcdCluster, node: NsRef): Promise<void> {
  for (const r of cutRules(tb, etcd))
    for (let i = 0; i < 10; i++) {
      const res = await tb.exec(node, ['iptables', '-w', '5', '-D', ...r], { allowFailure: true, timeoutMs: 10_000 });
      if (res.exitCode !== 0) break;
    }
}
