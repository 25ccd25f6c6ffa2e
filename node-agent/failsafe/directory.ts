// Where the other agents listen: the `peer` address of their node records (agent.yaml `peer:`), mirrored from etcd.
// During an etcd outage the mirror keeps the last listing, which is what the holder needs then.
import type { Etcd3 } from 'etcd3';
import { Mirror, type Entry } from '../../common/etcd.js';
import { decode, NodeRecord, type Keys } from '../../common/keyspace.js';
import type { Logger } from '../../common/log.js';
import type { PeerRef } from './transport.js';

export class PeerDirectory {
  private readonly mirror: Mirror;
  private readonly parsed = new WeakMap<Entry, PeerRef | undefined>();

  constructor(
    client: Etcd3,
    private readonly keys: Keys,
    log: Logger,
  ) {
    this.mirror = new Mirror(client, keys.nodesPrefix(), log, { resyncMs: 60_000 });
  }

  start(signal: AbortSignal): void {
    this.mirror.start(signal);
  }

  address(node: string): PeerRef | undefined {
    const e = this.mirror.get(this.keys.node(node));
    if (!e) return undefined;
    if (!this.parsed.has(e)) {
      const rec = decode(NodeRecord, e.value);
      this.parsed.set(e, rec?.peer && rec.name === node ? { node, ...rec.peer } : undefined);
    }
    return this.parsed.get(e);
  }
}
