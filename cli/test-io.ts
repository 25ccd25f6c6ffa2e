// A CliIO that keeps what the CLI prints, for the CLI's unit tests.
import type { CliIO } from './main.js';

export function memoryIo(): { out: string[]; err: string[]; io: CliIO } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l) } };
}
