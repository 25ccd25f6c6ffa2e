// Failsafe promise sets stored once, by content (docs/design.md "Failsafe", rule 1, "Stored by digest").
//
// A failsafe group's assignment names its promise set (every registered node with its lease) by digest,
// `promiseSetRef`, and the set itself is `promisesets/<digest>`, written by the leader in the same fenced
// transaction as every assignment that names it. Inline, every assignment carried the whole set: ~50 bytes a node,
// ~50 KB a record at 1,000 nodes, 500 MB for a placement of 10,000 groups, and every node that came or went rewrote
// all of it (scale benchmark). Stored once, a record stays a few hundred bytes whatever the node count.
//
// Why this is rule 1 unchanged: the digest is SHA-256 of the set's canonical text, so a record names exactly one
// set, as if it carried it. A reader takes a set only when what it read hashes to the record's digest, and a reader
// that cannot find or check the set acts as if the record carried none: an agent does not acknowledge that epoch
// (so it keeps nothing by it), the controller does not plan the group until it can read the set (it waits, and
// writes nothing). The leader never deletes a set an assignment may name (collectable, below).
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Entry } from './etcd.js';
import { decode, PromiseSetEntry, type AssignmentRecord } from './keyspace.js';

/** promisesets/<digest>: the set, entries in node order. */
export const PromiseSetRecord = z.object({ set: z.array(PromiseSetEntry) });
export type PromiseSetRecord = z.infer<typeof PromiseSetRecord>;

/** The canonical text of a set: `node=lease` per entry, in the order given, comma-separated. */
export function canonicalPromiseSet(set: readonly PromiseSetEntry[]): string {
  return set.map((e) => `${e.node}=${e.lease}`).join(',');
}

const digests = new WeakMap<readonly PromiseSetEntry[], string>();

/** SHA-256 (hex) of the canonical text; cached per set object (the planner shares one frozen set per pass). */
export function promiseSetDigest(set: readonly PromiseSetEntry[]): string {
  let d = digests.get(set);
  if (d === undefined) digests.set(set, (d = createHash('sha256').update(canonicalPromiseSet(set)).digest('hex')));
  return d;
}

/** The value of promisesets/<digest>. */
export function promiseSetValue(set: readonly PromiseSetEntry[]): string {
  return JSON.stringify({ set });
}

/** Does the record name a promise set, inline (written before sets were stored by digest) or by digest? */
export function hasPromiseSet(rec: Pick<AssignmentRecord, 'promiseSet' | 'promiseSetRef'> | undefined): boolean {
  return rec?.promiseSet !== undefined || rec?.promiseSetRef !== undefined;
}

/** Where a reader looks a stored set up: its mirror of promisesets/. */
export interface PromiseSetSource {
  get(key: string): Entry | undefined;
}

/**
 * Reads stored sets through a mirror of promisesets/, checked against their digest: a value that does not parse,
 * or whose set does not hash to the digest it is stored under, counts as absent (logged once per entry).
 */
export class PromiseSets {
  private readonly read = new WeakMap<Entry, readonly PromiseSetEntry[] | undefined>();

  constructor(
    private readonly source: PromiseSetSource,
    private readonly keyOf: (digest: string) => string,
    private readonly onBad?: (digest: string, why: string) => void,
  ) {}

  /** The set stored under `digest`, or undefined when it is not there (yet) or does not check. */
  get(digest: string): readonly PromiseSetEntry[] | undefined {
    const e = this.source.get(this.keyOf(digest));
    if (!e) return undefined;
    if (this.read.has(e)) return this.read.get(e);
    let set: readonly PromiseSetEntry[] | undefined = decode(PromiseSetRecord, e.value, (why) =>
      this.onBad?.(digest, why),
    )?.set;
    if (set && promiseSetDigest(set) !== digest) {
      this.onBad?.(digest, 'the set does not hash to its digest');
      set = undefined;
    }
    if (set) set = Object.freeze(set);
    this.read.set(e, set);
    return set;
  }

  /**
   * The record with its set in `promiseSet`: as it is when it carries the set inline or names none; with the stored
   * set when it names one by digest; undefined when it names one that cannot be read (the caller must not act on
   * the record as if it named no set).
   */
  resolve<R extends Pick<AssignmentRecord, 'promiseSet' | 'promiseSetRef'>>(rec: R): R | undefined {
    if (rec.promiseSetRef === undefined || rec.promiseSet !== undefined) return rec;
    const set = this.get(rec.promiseSetRef);
    return set ? { ...rec, promiseSet: set as PromiseSetEntry[] } : undefined;
  }
}

/**
 * The stored sets the leader may delete: under the prefix, named by no assignment, and last written at or before
 * `assignmentsRevision` (the revision of the assignments mirror `referenced` was read from). Why that is safe: the
 * leader writes a set in the same transaction as every assignment that names it, so a record naming it that the
 * mirror does not show yet was written after the set's last write, by a transaction that wrote the set again; the
 * delete compares the set's mod revision with the one read here, so it deletes nothing that was written since.
 */
export function collectable(
  stored: Iterable<Entry>,
  referenced: ReadonlySet<string>,
  assignmentsRevision: number,
  digestOf: (key: string) => string | undefined,
): Entry[] {
  const out: Entry[] = [];
  for (const e of stored) {
    const d = digestOf(e.key);
    if (d !== undefined && !referenced.has(d) && e.modRevision <= assignmentsRevision) out.push(e);
  }
  return out;
}

const values = new WeakMap<readonly PromiseSetEntry[], string>();

/**
 * An assignment as the leader writes it: its set named by digest (`promiseSetRef`) instead of inline, and the
 * set's own key and value, which go in the same transaction.
 */
export function assignmentWire(
  record: AssignmentRecord,
  keyOf: (digest: string) => string,
): { value: string; set?: { key: string; value: string } } {
  // A digest the record came with is dropped: the one written is the digest of the set it carries, whose value goes
  // in the same transaction (a record built from a read one must not name a set nobody writes with it).
  const { promiseSet, promiseSetRef: _read, ...rest } = record;
  if (!promiseSet) return { value: JSON.stringify(rest) };
  const digest = promiseSetDigest(promiseSet);
  let value = values.get(promiseSet);
  if (value === undefined) values.set(promiseSet, (value = promiseSetValue(promiseSet)));
  return { value: JSON.stringify({ ...rest, promiseSetRef: digest }), set: { key: keyOf(digest), value } };
}
