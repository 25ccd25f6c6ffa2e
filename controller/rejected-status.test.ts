import { describe, expect, test } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import { RejectedInEtcd } from './rejected-status.js';
import { NO_STATUS, type GroupSource, type SourceGroup } from './sources/types.js';

/** Just what RejectedInEtcd calls: put, delete and a key listing, on a map. */
function fakeEtcd(initial: Record<string, string> = {}) {
  const kv = new Map(Object.entries(initial));
  const client = {
    put: (key: string) => ({ value: (v: string) => ({ exec: async () => void kv.set(key, v) }) }),
    delete: () => ({ key: (key: string) => ({ exec: async () => void kv.delete(key) }) }),
    getAll: () => ({ prefix: (p: string) => ({ keys: async () => [...kv.keys()].filter((k) => k.startsWith(p)) }) }),
  };
  return { kv, client: client as unknown as Etcd3 };
}

const keys = new Keys('/t/');
const flush = () => new Promise((r) => setImmediate(r));

describe('RejectedInEtcd', () => {
  test('a rejected group gets rejected/<group> with the reason; placed or gone, the key goes', async () => {
    const etcd = fakeEtcd({ '/t/rejected/old': JSON.stringify({ reason: 'left by an earlier leader', at: 1 }) });
    const r = new RejectedInEtcd({ client: etcd.client, keys, clock: { wall: () => 42 }, log: silentLogger() });
    const sink = r.sink(NO_STATUS);
    let groups: SourceGroup[] = [{ name: 'db' }, { name: 'web' }, { name: 'old' }];
    const inner: GroupSource = { kind: 'test', start: async () => undefined, list: () => groups };
    const source = r.source(inner);

    await sink.report('db', { rejected: 'VIP 198.18.0.100 is already claimed by group web', source: { name: 'db' } });
    await sink.report('web', { source: { name: 'web' } });
    await sink.report('old', { source: { name: 'old' } });
    expect(Object.fromEntries(etcd.kv)).toEqual({
      '/t/rejected/db': JSON.stringify({ reason: 'VIP 198.18.0.100 is already claimed by group web', at: 42 }),
    });

    groups = [{ name: 'web' }];
    expect(source.list()).toBe(groups);
    await flush();
    expect(etcd.kv.size).toBe(0);
  });
});
