// Mirror entries parsed once: the leader reads every node, health, assignment and release record on every pass,
// and a pass over 1,000 groups on 100 nodes parsed ~5,000 records with zod each time (the scale benchmark's hot
// spot). A Mirror replaces an entry on every change and never edits one, so an entry object stands for one mod
// revision of its key: its parse is cached with it and goes with it. Callers must not change what they get.
import type { z } from 'zod';
import type { Entry } from '../common/etcd.js';
import { decode } from '../common/keyspace.js';

/**
 * The parse is kept on the entry itself, under a symbol (non-enumerable: the entry's keys, JSON and equality in
 * tests stay as they were). A WeakMap per schema did the same, but each lookup cost ~1 µs: 60,000 of them per pass
 * at 10,000 groups (assignments are read three times a pass) were a third of buildInput (hack/bench/pass.ts).
 */
const PARSED = Symbol('vipwarden.parsed');

interface Parsed {
  schema: z.ZodType;
  value: unknown;
}

type Cached = Entry & { [PARSED]?: Parsed };

/** Entries read with a second schema (rare): those parses live here. */
const others = new WeakMap<z.ZodType, WeakMap<Entry, { value: unknown }>>();

/** decode(schema, e.value), once per entry; `onBad` is told (once) when it does not parse. */
export function decodeEntry<T>(schema: z.ZodType<T>, e: Entry, onBad?: (why: string) => void): T | undefined {
  const c = (e as Cached)[PARSED];
  if (c?.schema === schema) return c.value as T | undefined;
  if (c === undefined) {
    const value = decode(schema, e.value, onBad);
    Object.defineProperty(e, PARSED, { value: { schema, value } satisfies Parsed, enumerable: false });
    return value;
  }
  let bySchema = others.get(schema);
  if (!bySchema) others.set(schema, (bySchema = new WeakMap()));
  const hit = bySchema.get(e);
  if (hit) return hit.value as T | undefined;
  const value = decode(schema, e.value, onBad);
  bySchema.set(e, { value });
  return value;
}
