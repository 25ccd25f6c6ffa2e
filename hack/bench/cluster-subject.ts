// The node operations of a Subject (types.ts) over a testbed cluster (hack/testbed/cluster.ts): nginx as the
// service, the node's agent as the daemon. The benchmark's vipwarden subject (vipwarden.ts) and the chaos run's
// multi-group subject (hack/chaos/faults.ts) both start from these.
import type { Cluster } from '../testbed/cluster.js';
import { withTimeout } from '../testbed/util.js';
import type { Subject } from './types.js';

export type ClusterNodeOps = Pick<
  Subject,
  | 'killService'
  | 'startService'
  | 'serviceRunning'
  | 'signalDaemon'
  | 'waitDaemonGone'
  | 'daemonRunning'
  | 'startDaemon'
>;

export function clusterNodeOps(c: Cluster): ClusterNodeOps {
  const agentOf = (node: string) => c.agents.get(node);
  return {
    killService: (node) => c.nginx.get(node)!.kill(),
    startService: (node) => c.nginx.get(node)!.start(),
    serviceRunning: (node) => c.nginx.get(node)?.running ?? false,
    signalDaemon(node, signal) {
      const a = agentOf(node);
      if (a && !a.exited) a.kill(signal);
    },
    async waitDaemonGone(node, timeoutMs) {
      const a = agentOf(node);
      if (!a || a.exited) return;
      const r = await withTimeout(a.done, timeoutMs, 'timeout' as const);
      if (r === 'timeout') {
        a.kill('SIGCONT');
        await a.stop({ signal: 'SIGKILL', timeoutMs: 2000 });
      }
    },
    daemonRunning: (node) => {
      const a = agentOf(node);
      return a !== undefined && !a.exited;
    },
    async startDaemon(node) {
      await c.startAgent(node);
    },
  };
}
