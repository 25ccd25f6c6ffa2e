// SIGTERM and SIGINT for the daemons: stop once (a second signal does not start a second stop), exit 0 when done,
// and exit 1 if stopping takes longer than the hard deadline.
import type { Logger } from './log.js';

export function stopOnSignals(opts: {
  log: Logger;
  /** Everything the daemon must do before it exits, in order. */
  stop: () => Promise<unknown>;
  /** Exit 1 after this long, if the stop has not finished. */
  hardTimeoutMs?: number;
}): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    opts.log.info({ signal }, 'stopping');
    if (opts.hardTimeoutMs !== undefined) setTimeout(() => process.exit(1), opts.hardTimeoutMs).unref();
    opts
      .stop()
      .catch((err: unknown) => opts.log.error({ err }, 'stopping failed'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Runs a daemon's main(); a failure to start is one line on stderr and exit 1. */
export function runDaemon(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
