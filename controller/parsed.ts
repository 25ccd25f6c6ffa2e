// Mirror entries parsed once: the leader reads every node, health, assignment and release record on every pass,
// and a pass over 1,000 groups on 100 nodes parsed ~5,000 records with zod each time (the scale benchmark's hot
// spot). A Mirror replaces an entry on every change and never edits one, so an entry object stands for one mod
// revision of its key: its parse is cached with it and goes with it. Callers must not change what they get.
import type { z } from 'zod';
import type { Entry } from '../common/etcd.js';
import { decode } from '../common/keyspace.js';

const cache = new WeakMap<z.ZodType, WeakMap<Entry, unknown>>();

/** decode(schema, e.value), once per entry; `onBad` is told (once) when it does not parse. */
export function decodeEntry<T>(schema: z.ZodType<T>, e: Entry, onBad?: (why: string) => void): T | undefined {
  let bySchema = cache.get(schema);
  if (!bySchema) cache.set(schema, (bySchema = new WeakMap()));
  if (bySchema.has(e)) return bySchema.get(e) as T | undefined;
  const v = decode(schema, e.value, onBad);
  bySchema.set(e, v);
  return v;
}
