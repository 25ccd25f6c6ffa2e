// The LVS director (issue 11, DESIGN.md "LVS directors"). The node that holds a group is its director: it programs
// the group's IPVS virtual services. Every candidate runs the real-server checks, and the IPVS sync daemon runs as
// master on a holder and as backup on a standby, so that established connections follow the VIP.
//
// Level-triggered like the agent: acquire/release, candidate changes and real-server state changes only kick a
// pass; a pass lists the table (`ipvsadm -Sn`), plans against the held groups' services (planner.ts) and applies
// the difference in one `ipvsadm -R` batch. Only services that vipwarden recorded as its own (state file) or that
// a held group asks for are touched; recorded ones that no held group wants are removed at start.
import type { Clock } from '../../common/clock.js';
import type { Exec } from '../../common/exec.js';
import { fingerprint } from '../../common/hash.js';
import type { Logger } from '../../common/log.js';
import type { Spec } from '../../crds/failovergroup.js';
import { checks as checkRegistry, type CheckFn } from '../checks/index.js';
import type { AgentConfig } from '../config.js';
import type { GroupResource, ResourceContext } from '../resources.js';
import { RealServerChecks, type CheckTarget, type TargetPolicy } from './checks.js';
import { OwnedStore, type Owned } from './owned.js';
import { withStats, type RealServerStatus } from './status.js';
import { applyIpvsSysctls } from './sysctls.js';
import {
  actionArgs,
  parseDaemons,
  parseIpvsRules,
  parseListing,
  restoreBatch,
  serviceKey,
  type IpvsAction,
} from './ipvs.js';
import {
  desiredServices,
  planIpvs,
  planSync,
  realServerId,
  syncArgs,
  syncWant,
  type DesiredService,
  type RealServerView,
} from './planner.js';

export interface LvsDirectorOptions {
  config: Pick<AgentConfig, 'node' | 'interface' | 'stateDir'> & Partial<AgentConfig>;
  exec: Exec;
  clock: Clock;
  log: Logger;
  checkRegistry?: Record<string, CheckFn>;
  /** The node allowlist for check targets (issue 10); absent: every real server may be probed. */
  policy?: TargetPolicy;
  /** Program name or path of ipvsadm (Debian: /usr/sbin/ipvsadm). */
  ipvsadm?: string;
  /** The IPVS sync daemon: multicast interface (the agent's interface) and sync id; false: do not run it. */
  sync?: { interface?: string; syncId?: number } | false;
  /** Kernel settings applied once the node directs a service (sysctl -w); see docs/lvs.md. */
  sysctls?: boolean;
}

export type { RealServerStatus } from './status.js';

export class LvsDirector {
  private readonly held = new Map<string, Spec>();
  private candidates = new Map<string, Spec>();
  private readonly checks: RealServerChecks;
  private readonly store: OwnedStore;
  private ac = new AbortController();
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private sysctlsDone = false;
  /** The sync want last applied; a periodic pass (fullPass) lists and checks the daemons anyway. */
  private syncApplied: string | undefined;
  /** Set by stop(): the daemons it stops are not started again by a late pass. */
  private daemonsStopping = false;
  private fullPass = false;
  private candidatesHash = fingerprint([]);
  private lastViews: RealServerView[] = [];
  private lastError: unknown;
  private readonly ipvsadm: string;
  private periodic: NodeJS.Timeout | undefined;

  constructor(private readonly o: LvsDirectorOptions) {
    this.ipvsadm = o.ipvsadm ?? 'ipvsadm';
    this.store = new OwnedStore(o.config.stateDir, o.config.node);
    this.checks = new RealServerChecks({
      registry: o.checkRegistry ?? checkRegistry,
      checkDeps: { exec: o.exec, config: o.config as AgentConfig },
      clock: o.clock,
      log: o.log,
      policy: o.policy,
    });
    this.checks.on('change', () => this.kick());
  }

  /** Starts the checks and the periodic pass; removes what an earlier run left behind (nothing is held yet). */
  async start(signal: AbortSignal): Promise<void> {
    signal.addEventListener('abort', () => void this.stop(), { once: true });
    this.checks.start(this.ac.signal);
    await this.store.load();
    await this.cleanupStale();
    this.periodic = setInterval(() => {
      this.fullPass = true;
      this.kick();
    }, 5000);
    this.periodic.unref();
  }

  /** Stops the checks and the sync daemons it started. Held services are removed by release(), not here. */
  async stop(): Promise<void> {
    if (this.ac.signal.aborted) return;
    if (this.periodic) clearInterval(this.periodic);
    this.checks.stop();
    // From here no pass starts a daemon: the agent's releases still run passes (they remove the table), and one of
    // them, seeing this node as the group's standby, started a backup daemon after the loop below had run (CI).
    this.daemonsStopping = true;
    for (let i = 0; i < 10 && (this.running || this.next); i++)
      await (this.next ?? this.running)?.catch(() => undefined);
    this.ac.abort();
    this.candidates.clear();
    // On the way out, no listing first: stop what it started, at once (the agent's exit is on a timer).
    for (const state of this.owned.daemons) {
      await this.o.exec([this.ipvsadm, ...syncArgs({ type: 'stop', state })], { timeoutMs: 5000 }).then(
        () => this.o.log.info({ step: `--stop-daemon ${state}` }, 'IPVS sync daemon'),
        (err: unknown) => this.o.log.warn({ err, state }, 'could not stop the IPVS sync daemon'),
      );
    }
    await this.store.save({ ...this.owned, daemons: [] }).catch(() => undefined);
  }

  /**
   * The whole input at once: the groups this node holds and every group that names it as a candidate. Resolves
   * when the table matches (or rejects with why not).
   */
  reconcile(held: ReadonlyMap<string, Spec>, candidates: ReadonlyMap<string, Spec>): Promise<void> {
    this.held.clear();
    for (const [g, s] of held) this.held.set(g, s);
    this.candidates = new Map(candidates);
    return this.pass();
  }

  /** Every group that names this node (the agent calls this whenever it lists the groups); standbys check too. */
  setCandidates(candidates: ReadonlyMap<string, Spec>): void {
    const lvs = [...candidates]
      .filter(([, s]) => (s.virtualServers ?? []).length > 0)
      .sort(([a], [b]) => a.localeCompare(b));
    this.candidates = new Map(candidates);
    // Called on every agent pass: only a change of the LVS groups (or their specs) is worth a pass of ours.
    const hash = fingerprint(lvs.map(([g, s]) => [g, s.vips, s.virtualServers]));
    if (hash === this.candidatesHash) return;
    this.candidatesHash = hash;
    this.kick();
  }

  /** The GroupResource that the agent runs on acquire and release: the holder directs. */
  resource(): GroupResource {
    return {
      name: 'lvs',
      acquire: async (ctx: ResourceContext) => {
        if (!ctx.spec) return;
        if ((ctx.spec.virtualServers ?? []).length === 0 && !this.held.has(ctx.group)) return;
        this.held.set(ctx.group, ctx.spec);
        if (!this.candidates.has(ctx.group)) this.candidates.set(ctx.group, ctx.spec);
        await this.pass();
        ctx.log.info({ services: (ctx.spec.virtualServers ?? []).map((v) => v.name) }, 'directing');
      },
      release: async (ctx: ResourceContext) => {
        if (!this.held.delete(ctx.group)) return;
        await this.pass();
      },
      cleanupStale: async () => {
        await this.cleanupStale();
      },
    };
  }

  /** Real servers of every group this node is a candidate for, with the IPVS counters where it directs. */
  async status(): Promise<RealServerStatus[]> {
    const all = new Map<string, Spec>([...this.candidates, ...this.held]);
    const { views } = desiredServices(all, (id) => this.checks.health(id));
    let conns = new Map<string, Map<string, number[]>>();
    let stats = new Map<string, Map<string, number[]>>();
    if (this.held.size > 0 && this.owned.services.length > 0) {
      [conns, stats] = await Promise.all([
        this.list(['-Ln', '--exact']).then((t) => parseListing(t, 'conns')),
        this.list(['-Ln', '--stats', '--exact']).then((t) => parseListing(t, 'stats')),
      ]).catch(() => [new Map(), new Map()] as const);
    }
    const held = desiredServices(this.held, (id) => this.checks.health(id)).services;
    return withStats(views, held, conns, stats, (id) => this.checks.message(id));
  }

  /** The last pass's error (undefined when it succeeded): for readiness and tests. */
  get error(): unknown {
    return this.lastError;
  }

  /** Subscribes to real-server check results (metrics). */
  onResult(fn: (id: string, ok: boolean, latencyMs: number) => void): void {
    this.checks.on('result', fn);
  }

  kick(): void {
    if (this.ac.signal.aborted) return;
    this.pass().catch((err) => this.o.log.error({ err }, 'LVS pass failed'));
  }

  /** One pass at a time; a caller during a pass gets the next one, shared by every caller that came meanwhile. */
  private pass(): Promise<void> {
    if (!this.running) {
      this.running = this.once()
        .then(
          () => void (this.lastError = undefined),
          (err: unknown) => {
            this.lastError = err;
            throw err;
          },
        )
        .finally(() => (this.running = undefined));
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.pass();
      });
    return this.next;
  }

  private async once(): Promise<void> {
    const full = this.fullPass;
    this.fullPass = false;
    try {
      await this.onePass(full);
    } catch (err) {
      this.fullPass ||= full;
      throw err;
    }
  }

  private async onePass(full: boolean): Promise<void> {
    this.syncChecks();
    // One view for the whole pass: a release during it is the next pass's business, table and daemons alike.
    const held = new Map(this.held);
    const standby = new Map([...this.candidates].filter(([g]) => !held.has(g)));
    const { services, views } = desiredServices(held, (id) => this.checks.health(id));
    this.logViewChanges(views);
    // Nodes that direct nothing and own nothing never run ipvsadm (it may not even be installed).
    if (services.length > 0 || this.owned.services.length > 0) await this.applyTable(services);
    await this.applySync(held, standby, full);
  }

  private syncChecks(): void {
    const targets: CheckTarget[] = [];
    for (const [group, spec] of new Map([...this.candidates, ...this.held])) {
      for (const vs of spec.virtualServers ?? []) {
        if (!vs.check) continue;
        for (const rs of vs.realServers) {
          const port = rs.port ?? vs.port;
          targets.push({
            id: realServerId(group, vs.name, { address: rs.address, port }),
            address: rs.address,
            port,
            check: vs.check,
          });
        }
      }
    }
    this.checks.sync(targets);
  }

  private async applyTable(services: DesiredService[]): Promise<void> {
    const listed = parseIpvsRules(await this.list(['-Sn']));
    const owned = new Set(this.owned.services);
    const actions = planIpvs(services, listed.services, owned);
    const keep = new Set(services.map(serviceKey));
    // Recorded before anything is added: a crash in between leaves nothing that the next start does not remove.
    if (actions.some((a) => a.type === 'add-service'))
      await this.store.save({ ...this.owned, services: [...new Set([...owned, ...keep])] });
    if (services.length > 0 && this.o.sysctls !== false && !this.sysctlsDone) {
      await applyIpvsSysctls(this.o.exec, this.o.log, services);
      this.sysctlsDone = true;
    }
    if (actions.length > 0) await this.run(actions);
    // Every recorded service that no held group wants was deleted by the batch (or was already gone).
    await this.store.save({ ...this.owned, services: [...keep] });
  }

  private async run(actions: IpvsAction[]): Promise<void> {
    this.o.log.info({ changes: actions.map((a) => actionArgs(a).join(' ')) }, 'IPVS table changed');
    await this.o.exec([this.ipvsadm, '-R'], { input: restoreBatch(actions), timeoutMs: 10_000 });
  }

  private async applySync(
    held: ReadonlyMap<string, Spec>,
    standby: ReadonlyMap<string, Spec>,
    full: boolean,
  ): Promise<void> {
    if (this.o.sync === false || this.daemonsStopping) return;
    const want = syncWant(held, standby, {
      interface: this.o.sync?.interface ?? this.o.config.interface,
      syncId: this.o.sync?.syncId ?? 0,
    });
    const owned = new Set(this.owned.daemons);
    if (!want.master && !want.backup && owned.size === 0) return;
    // The daemons change only with the roles: between two periodic passes, an unchanged want needs no listing.
    const wantKey = JSON.stringify(want);
    if (wantKey === this.syncApplied && !full) return;
    const actual = parseDaemons(await this.list(['-Ln', '--daemon']));
    const steps = planSync(want, actual, owned);
    const daemons = new Set(owned);
    for (const s of steps) {
      if (s.type === 'start') {
        daemons.add(s.state);
        await this.store.save({ ...this.owned, daemons: [...daemons] });
      }
      await this.o.exec([this.ipvsadm, ...syncArgs(s)], { timeoutMs: 10_000 });
      if (s.type === 'stop') daemons.delete(s.state);
      this.o.log.info({ step: syncArgs(s).join(' ') }, 'IPVS sync daemon');
    }
    for (const st of ['master', 'backup'] as const) if (!want[st]) daemons.delete(st);
    if (daemons.size !== owned.size || [...daemons].some((d) => !owned.has(d)))
      await this.store.save({ ...this.owned, daemons: [...daemons] });
    this.syncApplied = wantKey;
  }

  private async cleanupStale(): Promise<void> {
    if (this.owned.services.length === 0 && this.owned.daemons.length === 0) return;
    this.o.log.info({ services: this.owned.services, daemons: this.owned.daemons }, 'removing IPVS state left over');
    await this.pass();
  }

  private async list(args: string[]): Promise<string> {
    return (await this.o.exec([this.ipvsadm, ...args], { timeoutMs: 10_000 })).stdout;
  }

  /** What vipwarden recorded as its own (state file): only these services and daemons are removed or stopped. */
  private get owned(): Owned {
    return this.store.current;
  }

  private logViewChanges(views: RealServerView[]): void {
    const before = new Map(this.lastViews.map((v) => [v.id, v]));
    for (const v of views) {
      const b = before.get(v.id);
      if (b && (b.weight !== v.weight || b.sorry !== v.sorry))
        this.o.log.info({ realServer: v.id, up: v.up, weight: v.weight ?? 'removed', sorry: v.sorry }, 'real server');
    }
    this.lastViews = views;
  }
}
