// Last-resort cleanup: resources register a synchronous undo that runs on process exit
// (normal exit, uncaught error, or SIGINT/SIGTERM once `installSignalHandlers` was called).
// Regular code calls the async destroy/stop methods and unregisters; this is only for crashes.

type SyncCleanup = () => void;

const pending = new Map<number, { what: string; fn: SyncCleanup }>();
let nextId = 1;
let exitHookInstalled = false;

function runAll(): void {
  // Newest first: processes before the namespaces they live in.
  const entries = [...pending.entries()].reverse();
  pending.clear();
  for (const [, { fn }] of entries) {
    try {
      fn();
    } catch {
      // keep going: best effort
    }
  }
}

/** Registers `fn` to run at exit; returns the function that unregisters it. */
export function onExitCleanup(what: string, fn: SyncCleanup): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', runAll);
  }
  const id = nextId++;
  pending.set(id, { what, fn });
  return () => {
    pending.delete(id);
  };
}

/** What is still registered (for diagnostics). */
export function pendingCleanups(): string[] {
  return [...pending.values()].map((e) => e.what);
}

let signalsInstalled = false;
/** For scripts (not jest): run the exit cleanups on SIGINT/SIGTERM/SIGHUP too, then exit. */
export function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      runAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}
