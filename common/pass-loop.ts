// Level-triggered passes: events only kick, and one pass at a time reads the whole state. A kick that comes in
// during a pass runs one more pass after it (however many kicks came), so no change is missed and none is run twice
// at once. The agent and the controller share this loop; what a pass does, and what it counts, is theirs.
export interface PassLoopOptions {
  /** One pass. It should not throw; a throw ends this round of passes (the next kick starts a new one). */
  pass: () => Promise<void>;
  /** False: do not start another pass (stopping, or no longer the leader). */
  active: () => boolean;
}

export class PassLoop {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly opts: PassLoopOptions) {}

  /** Asks for a pass. Resolves when the passes that answer this kick are done. */
  kick(): Promise<void> {
    if (!this.opts.active()) return this.running ?? Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => (this.running = undefined));
    return this.running;
  }

  /** True while a pass runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      await this.opts.pass();
    } while (this.again && this.opts.active());
  }
}
