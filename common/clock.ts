// Time, injected so that logic is tested with fake time.
export interface Clock {
  /** Monotonic milliseconds (CLOCK_MONOTONIC, shared by all processes on the machine). */
  mono(): number;
  /** Wall-clock milliseconds since the epoch, for records people read. */
  wall(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  mono: () => Number(process.hrtime.bigint() / 1000n) / 1000,
  wall: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};
