// The five fault modes, each as an injection and an undo built from a Subject's primitives.
// The same code drives vipwarden and keepalived, so both see exactly the same fault.
import type { Mode, Subject } from './types.js';

/** Nodes whose service, daemon or link is impaired by an injected fault: they are not "healthy". */
export class FaultState {
  private readonly impaired = new Map<string, Mode>();

  isHealthy(node: string): boolean {
    return !this.impaired.has(node);
  }

  mark(node: string, mode: Mode): void {
    this.impaired.set(node, mode);
  }

  clear(node: string): void {
    this.impaired.delete(node);
  }

  faults(): [string, Mode][] {
    return [...this.impaired];
  }
}

/** The signal that is the fault, for the daemon faults. */
const FAULT_SIGNAL: Partial<Record<Mode, 'SIGTERM' | 'SIGKILL' | 'SIGSTOP'>> = {
  graceful: 'SIGTERM',
  kill: 'SIGKILL',
  freeze: 'SIGSTOP',
};

export async function inject(s: Subject, st: FaultState, mode: Mode, node: string): Promise<void> {
  st.mark(node, mode);
  const signal = FAULT_SIGNAL[mode];
  if (signal) s.signalDaemon(node, signal);
  else if (mode === 'service') await s.killService(node);
  else if (mode === 'link') await s.tb.cutLink(node);
}

/** Undoes a fault: the node gets its service, link and daemon back (the daemon restarted where it ended). */
export async function undo(s: Subject, st: FaultState, mode: Mode, node: string): Promise<void> {
  switch (mode) {
    case 'service':
      await s.startService(node);
      break;
    case 'graceful':
    case 'kill':
      await s.waitDaemonGone(node, 5000);
      await s.startDaemon(node);
      break;
    case 'link':
      await s.tb.restoreLink(node);
      break;
    case 'freeze':
      s.signalDaemon(node, 'SIGCONT');
      break;
  }
  st.clear(node);
}

/** Brings every node back to the initial state, whatever happened (used after a failed iteration). */
export async function heal(s: Subject, st: FaultState): Promise<void> {
  for (const [node, mode] of st.faults()) await undo(s, st, mode, node).catch(() => undefined);
  for (const n of s.tb.nodes) {
    if (s.tb.isCut(n.name)) await s.tb.restoreLink(n.name);
    s.signalDaemon(n.name, 'SIGCONT');
    if (!s.serviceRunning(n.name)) await s.startService(n.name);
    if (!s.daemonRunning(n.name)) await s.startDaemon(n.name);
  }
}
