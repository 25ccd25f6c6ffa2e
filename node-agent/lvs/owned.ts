// What the director recorded as its own (<stateDir>/<node>.lvs.json): the IPVS services it added and the sync
// daemons it started. Only these are removed or stopped, also by the next start after a crash.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';

export interface Owned {
  services: string[];
  daemons: ('master' | 'backup')[];
}

const STATE_FILE = 'lvs.json';

export class OwnedStore {
  /** The last loaded or saved record. */
  current: Owned = { services: [], daemons: [] };
  private saved = false;
  private readonly path: string;

  constructor(
    private readonly stateDir: string,
    node: string,
  ) {
    this.path = `${stateDir}/${node}.${STATE_FILE}`;
  }

  /** Reads the record (empty when there is none or it cannot be read). */
  async load(): Promise<Owned> {
    try {
      const j = JSON.parse(await readFile(this.path, 'utf8')) as Partial<Owned>;
      this.current = {
        services: Array.isArray(j.services) ? j.services.filter((s) => typeof s === 'string') : [],
        daemons: Array.isArray(j.daemons) ? j.daemons.filter((d) => d === 'master' || d === 'backup') : [],
      };
    } catch {
      this.current = { services: [], daemons: [] };
    }
    return this.current;
  }

  /** Writes the record atomically; nothing when it is unchanged and was written before. */
  async save(next: Owned): Promise<void> {
    const sorted = { services: [...next.services].sort(), daemons: [...next.daemons].sort() };
    if (JSON.stringify(sorted) === JSON.stringify(this.current) && this.saved) return;
    this.current = sorted;
    this.saved = true;
    await mkdir(this.stateDir, { recursive: true });
    await writeFile(`${this.path}.tmp`, JSON.stringify(this.current) + '\n');
    await rename(`${this.path}.tmp`, this.path);
  }
}
