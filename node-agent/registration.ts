// The node record (nodes/<node>, under the node lease): who this agent is, its lease timing (for the controller's
// Safety 3 wait), and the groups whose spec it cannot parse. A node name belongs to one live agent: a second agent
// started with a name that is registered under another live lease refuses to start, and the record is only ever
// written over when it is absent, ours, or under a lease etcd says is gone (never inferred from the record).
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { decode, NodeRecord, type Keys, type NodeFailsafe } from '../common/keyspace.js';
import { maxLifetimeSeconds } from '../common/lease.js';
import type { Logger } from '../common/log.js';
import { fenceOptions, type AgentConfig } from './config.js';
import { peerEndpoint } from './peer/config.js';

export class NodeNameTakenError extends Error {
  constructor(
    readonly node: string,
    readonly lease: string,
    detail: string,
  ) {
    super(
      `node name "${node}" is already registered by another live agent (lease ${lease}${detail}): ` +
        `two agents must never share a node name; stop the other agent or give this one its own "node" in agent.yaml`,
    );
    this.name = 'NodeNameTakenError';
  }
}

export interface SpecError {
  group: string;
  why: string;
}

export interface NodeRegistrationDeps {
  client: Etcd3;
  keys: Keys;
  config: AgentConfig;
  clock: Clock;
  log: Logger;
  version: string;
}

interface Parts {
  specErrors: SpecError[];
  failsafe?: NodeFailsafe;
}

export class NodeRegistration {
  /** Every lease this process was granted: a record under one of them is ours to write over. */
  private readonly ownLeases = new Set<string>();
  /** The parts of the record that change while the agent runs. */
  private readonly parts: Parts = { specErrors: [] };
  private readonly startedAt: number;

  constructor(private readonly d: NodeRegistrationDeps) {
    this.startedAt = d.clock.wall();
  }

  private get key(): string {
    return this.d.keys.node(this.d.config.node);
  }

  /** Remaining seconds of a lease on the server (≤ 0: gone), and the TTL it was granted with. */
  private async leaseLeft(lease: string): Promise<{ ttl: number; granted: number }> {
    const r = await this.d.client.leaseClient.leaseTimeToLive({ ID: lease, keys: false });
    return { ttl: Number(r.TTL), granted: Number(r.grantedTTL) };
  }

  private async current(): Promise<{ lease: string; modRevision: string; value: string } | undefined> {
    const r = await this.d.client.get(this.key).exec();
    const kv = r.kvs[0];
    return kv ? { lease: String(kv.lease), modRevision: kv.mod_revision, value: kv.value.toString() } : undefined;
  }

  /**
   * At start, before this process is granted a lease: waits for a record under another lease to go (an earlier run
   * of this agent that was killed leaves one for up to its TTL), and refuses to start when that lease is still kept
   * alive after its whole TTL: another agent runs with this name.
   */
  async claimName(signal?: AbortSignal): Promise<void> {
    let deadline: number | undefined;
    for (;;) {
      const cur = await this.current();
      if (!cur || cur.lease === '0') return;
      const left = await this.leaseLeft(cur.lease);
      if (left.ttl <= 0) return;
      if (deadline === undefined) {
        deadline = this.d.clock.mono() + left.granted * 1000 + 1500;
        this.d.log.warn(
          { lease: cur.lease, ttlLeft: left.ttl },
          'node name registered under a live lease: waiting for it to end (an earlier run of this agent?)',
        );
      } else if (this.d.clock.mono() > deadline) {
        throw new NodeNameTakenError(this.d.config.node, cur.lease, describe(cur.value));
      }
      if (signal?.aborted) throw new Error('stopped while waiting for the node name');
      await this.d.clock.sleep(200, signal);
    }
  }

  /** Failsafe's part of the node record (node-agent/failsafe/); rewrites the record when it changes. */
  setFailsafe(info: NodeFailsafe, lease: string | undefined): Promise<void> {
    return this.change('failsafe', info, lease);
  }

  /** Groups this agent cannot parse (version skew), published in the node record; rewrites it when they change. */
  setSpecErrors(errors: SpecError[], lease: string | undefined): Promise<void> {
    return this.change(
      'specErrors',
      [...errors].sort((a, b) => a.group.localeCompare(b.group)),
      lease,
    );
  }

  /** Sets a part of the record and writes it under `lease`; on failure the old value stays (the next call retries). */
  private async change<K extends 'failsafe' | 'specErrors'>(
    part: K,
    value: Parts[K],
    lease: string | undefined,
  ): Promise<void> {
    if (JSON.stringify(value) === JSON.stringify(this.parts[part])) return;
    const before = this.parts[part];
    this.parts[part] = value;
    if (!lease) return;
    try {
      await this.register(lease);
    } catch (err) {
      this.parts[part] = before;
      throw err;
    }
  }

  private record(lease: string): NodeRecord {
    const c = this.d.config;
    return {
      name: c.node,
      lease,
      ttlSeconds: c.lease.ttlSeconds,
      maxLifetimeSeconds: maxLifetimeSeconds(c.lease),
      renewWindowMs: c.lease.renewWindowMs,
      addresses: [],
      interfaces: [c.interface],
      version: this.d.version,
      startedAt: this.startedAt,
      ...(this.parts.specErrors.length > 0 ? { specErrors: this.parts.specErrors } : {}),
      ...(c.peer ? { peer: peerEndpoint(c.peer) } : {}),
      ...fenceRecord(c),
      ...(this.parts.failsafe ? { failsafe: this.parts.failsafe } : {}),
    };
  }

  /**
   * Writes the node record under `lease`, in a transaction that holds only if the record is still what was read:
   * absent, under one of our own leases, or under a lease etcd says is gone. Throws NodeNameTakenError otherwise.
   */
  async register(lease: string): Promise<void> {
    this.ownLeases.add(lease);
    const value = JSON.stringify(this.record(lease));
    // The common case at start (no record): one round trip.
    const put0 = this.d.client.put(this.key).value(value).lease(lease);
    if ((await this.d.client.if(this.key, 'Create', '==', 0).then(put0).commit()).succeeded) {
      this.d.log.info({ lease }, 'node registered');
      return;
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.current();
      if (cur && !this.ownLeases.has(cur.lease) && cur.lease !== '0') {
        const left = await this.leaseLeft(cur.lease);
        if (left.ttl > 0) throw new NodeNameTakenError(this.d.config.node, cur.lease, describe(cur.value));
      }
      const put = this.d.client.put(this.key).value(value).lease(lease);
      const r = cur
        ? await this.d.client.if(this.key, 'Mod', '==', cur.modRevision).then(put).commit()
        : await this.d.client.if(this.key, 'Create', '==', 0).then(put).commit();
      if (r.succeeded) {
        this.d.log.info({ lease, specErrors: this.parts.specErrors.length || undefined }, 'node registered');
        return;
      }
    }
    throw new Error('node record kept changing under this agent while registering');
  }
}

function describe(value: string): string {
  const r = decode(NodeRecord, value);
  return r ? `, started ${new Date(r.startedAt).toISOString()}, version ${r.version}` : '';
}

/** What the node record says about the fast fence (the controller's wait depends on it, Safety 3). */
function fenceRecord(c: Parameters<typeof fenceOptions>[0]): Pick<NodeRecord, 'fence'> {
  const f = fenceOptions(c);
  if (!f) return {};
  return {
    fence: { kind: 'nftables', windowMs: f.windowMs, ...(f.heartbeatMs ? { heartbeatMs: f.heartbeatMs } : {}) },
  };
}
