// Test input kept as a file in a testdata/ directory next to the test that reads it: command output and
// configuration files read as what they are, not as arrays of quoted lines.
import { readFileSync } from 'node:fs';

/** The text of testdata/<name> next to the module at `moduleUrl` (import.meta.url), without its final newline. */
export function fixture(moduleUrl: string, name: string): string {
  return readFileSync(new URL(`testdata/${name}`, moduleUrl), 'utf8').replace(/\n$/, '');
}
