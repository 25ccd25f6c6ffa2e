// The bare-VM source: FailoverGroup YAML (the same documents Kubernetes users apply) in a directory.
// Files are read again on change (fs.watch is a hint) and every few seconds. A bad document never stops the
// others; a group whose new version is invalid keeps running with its last valid spec.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../../common/log.js';
import { parseFailoverGroup, ValidationError, type FailoverGroup } from '../../crds/failovergroup.js';
import type { GroupSource, SourceGroup } from './types.js';

export interface ParsedFile {
  path: string;
  docs: { name?: string; group?: FailoverGroup; error?: ValidationError }[];
}

/** Pure: the text of one file to its documents. */
export function parseGroupFile(path: string, text: string): ParsedFile {
  const docs: ParsedFile['docs'] = [];
  let all;
  try {
    all = parseAllDocuments(text);
  } catch (e) {
    return { path, docs: [{ error: new ValidationError(path, [{ path: '(file)', message: String(e) }]) }] };
  }
  const list = Array.isArray(all) ? all : [all];
  list.forEach((doc, i) => {
    const label = `${path}#${i}`;
    if (doc.errors.length) {
      docs.push({
        error: new ValidationError(
          label,
          doc.errors.map((e) => ({ path: '(yaml)', message: e.message })),
        ),
      });
      return;
    }
    const raw = doc.toJS() as unknown;
    if (raw === null || raw === undefined) return;
    const name = (raw as { metadata?: { name?: unknown } })?.metadata?.name;
    const r = parseFailoverGroup(raw, label);
    if (r.ok) docs.push({ name: r.group.name, group: r.group });
    else docs.push({ name: typeof name === 'string' ? name : undefined, error: r.error });
  });
  return { path, docs };
}

/** Pure: files (sorted by path) to groups, keeping the last valid version of groups whose new version is bad. */
export function mergeFiles(
  files: ParsedFile[],
  lastGood: ReadonlyMap<string, FailoverGroup>,
  createdAt: ReadonlyMap<string, number>,
): { groups: SourceGroup[]; errors: ValidationError[] } {
  const out = new Map<string, SourceGroup>();
  const errors: ValidationError[] = [];
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    for (const d of f.docs) {
      if (!d.name) {
        if (d.error) errors.push(d.error);
        continue;
      }
      const existing = out.get(d.name);
      if (existing) {
        errors.push(
          new ValidationError(f.path, [
            { path: 'metadata.name', message: `group "${d.name}" is defined twice; the first definition wins` },
          ]),
        );
        continue;
      }
      const group = d.group ?? lastGood.get(d.name);
      out.set(d.name, { name: d.name, group, error: d.error, createdAt: createdAt.get(d.name) });
    }
  }
  return { groups: [...out.values()], errors };
}

/** Files stat'ed and read at once by a scan. */
const READ_CONCURRENCY = 32;

export class DirectorySource implements GroupSource {
  readonly kind = 'directory';
  private snapshot: SourceGroup[] = [];
  private scanned = false;
  private readonly lastGood = new Map<string, FailoverGroup>();
  private readonly createdAt = new Map<string, number>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastErrors = '';
  /**
   * Parsed files, reused while a file's inode, size and times are unchanged: re-parsing 1,000 unchanged files
   * on every rescan kept the controller at ~60 % of a core (scale benchmark, hack/bench/scale.ts).
   */
  private readonly parsed = new Map<string, { stamp: string; file: ParsedFile }>();

  /** Groups whose file went away, with when: they stay until deleteGraceMs has passed (editors that delete and
   *  rewrite a file, or a config tool replacing the directory, must not make VIPs move). */
  private readonly missingSince = new Map<string, number>();
  private graceTimer: NodeJS.Timeout | undefined;
  private onChange: (() => void) | undefined;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly rescanMs = 2000,
    private readonly deleteGraceMs = 1500,
  ) {}

  list(): SourceGroup[] {
    return this.snapshot;
  }

  /**
   * False until the first scan is done. Without it a leader whose first scan outlasted the source's start timeout
   * (10,000 files on a loaded machine, scale benchmark) read an empty list as "every group deleted": it deleted the
   * group records and would have released every VIP; the records in etcd now stand in until the scan is done.
   */
  synced(): boolean {
    return this.scanned;
  }

  async start(signal: AbortSignal, onChange: () => void): Promise<void> {
    this.onChange = onChange;
    signal.addEventListener('abort', () => this.graceTimer && clearTimeout(this.graceTimer), { once: true });
    await this.scan();
    const rescan = () =>
      void this.scan().then(onChange, (err) => this.log.error({ err }, 'scanning the manifests directory failed'));
    try {
      this.watcher = watch(this.dir, { persistent: false }, () => rescan());
    } catch (err) {
      this.log.warn({ err, dir: this.dir }, 'cannot watch the manifests directory; rescanning periodically only');
    }
    this.timer = setInterval(rescan, this.rescanMs);
    signal.addEventListener(
      'abort',
      () => {
        this.watcher?.close();
        if (this.timer) clearInterval(this.timer);
      },
      { once: true },
    );
  }

  /**
   * Reads and parses the files before this controller leads (a standby does it once, at start): the first scan
   * after the election then finds every unchanged file parsed. Nothing is listed until then.
   */
  prefetch(): void {
    void this.readFiles().catch((err: unknown) => this.log.debug({ err }, 'reading the manifests ahead failed'));
  }

  /** Every manifest file, parsed (again only when its inode, size or times changed), in name order. */
  private async readFiles(): Promise<ParsedFile[]> {
    const names = (await readdir(this.dir)).filter((n) => /\.(ya?ml|json)$/.test(n) && !n.startsWith('.')).sort();
    const files: (ParsedFile | undefined)[] = new Array<ParsedFile | undefined>(names.length);
    // Many files at a time: one stat, open and read after another took 1.5-2.8 s for 1,000 files on the loaded
    // benchmark machine (scale benchmark), most of it waiting.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < names.length; i = next++) files[i] = await this.readFile(join(this.dir, names[i]!));
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, names.length) }, worker));
    return files.filter((f): f is ParsedFile => f !== undefined);
  }

  private async readFile(path: string): Promise<ParsedFile | undefined> {
    try {
      const st = await stat(path);
      if (!st.isFile()) return undefined;
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
      const hit = this.parsed.get(path);
      if (hit?.stamp === stamp) return hit.file;
      const file = parseGroupFile(path, await readFile(path, 'utf8'));
      this.parsed.set(path, { stamp, file });
      return file;
    } catch (err) {
      // A file removed between readdir and read is simply gone.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return undefined;
    }
  }

  async scan(): Promise<void> {
    const files = await this.readFiles();
    const scanned = new Set(files.map((f) => f.path));
    for (const p of [...this.parsed.keys()]) if (!scanned.has(p)) this.parsed.delete(p);
    const now = Date.now();
    for (const f of files)
      for (const d of f.docs) if (d.name && !this.createdAt.has(d.name)) this.createdAt.set(d.name, now);
    const { groups, errors } = mergeFiles(files, this.lastGood, this.createdAt);
    for (const g of groups) {
      if (g.group && !g.error) this.lastGood.set(g.name, g.group);
    }
    const present = new Set(groups.map((g) => g.name));
    for (const g of groups) this.missingSince.delete(g.name);
    // A group whose file disappeared is kept (last valid spec) for deleteGraceMs before it counts as deleted.
    let nextGrace: number | undefined;
    for (const prev of this.snapshot) {
      if (present.has(prev.name)) continue;
      const since = this.missingSince.get(prev.name) ?? now;
      this.missingSince.set(prev.name, since);
      if (now - since < this.deleteGraceMs) {
        groups.push(prev);
        present.add(prev.name);
        nextGrace = Math.min(nextGrace ?? Infinity, since + this.deleteGraceMs);
      } else {
        this.missingSince.delete(prev.name);
        this.log.info({ group: prev.name }, 'FailoverGroup removed from the manifests directory');
      }
    }
    if (nextGrace !== undefined && !this.graceTimer) {
      this.graceTimer = setTimeout(
        () => {
          this.graceTimer = undefined;
          void this.scan().then(
            () => this.onChange?.(),
            (err) => this.log.error({ err }, 'scanning the manifests directory failed'),
          );
        },
        Math.max(0, nextGrace - now) + 10,
      );
    }
    for (const n of [...this.lastGood.keys()]) if (!present.has(n)) this.lastGood.delete(n);
    const errText = [...errors, ...groups.flatMap((g) => (g.error ? [g.error] : []))].map((e) => e.message).join('\n');
    if (errText !== this.lastErrors) {
      for (const line of errText.split('\n').filter(Boolean)) this.log.error({ error: line }, 'invalid FailoverGroup');
      this.lastErrors = errText;
    }
    this.snapshot = groups;
    this.scanned = true;
  }
}
