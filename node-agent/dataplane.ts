// The client of vipwarden-dataplane (node-agent/native/dataplane.c): one long-running helper per agent that adds,
// renews, deletes and lists addresses over rtnetlink and sends gratuitous ARP and unsolicited NA, each request
// checked against its CLOCK_MONOTONIC deadline in the helper, immediately before the syscall that acts.
//
// One request per line, answers matched by id. A request that gets no answer in time rejects, and the helper is
// killed (it may be wedged). When the helper dies, every request in flight rejects with DataplaneUnavailableError
// (its outcome is unknown) and the next request starts a new helper, no sooner than restartDelayMs after the last
// start. Why restart rather than release: every address the helper added carries a kernel lifetime, so a dead
// helper fails safe by itself (no renewal, the kernel deletes the address); and releasing would itself need the
// helper. Requests that act carry their deadline to the new helper like to the old one. A helper whose agent died
// (or closed its stdin) reads no more requests and lives on only until the last lifetime it set has ended, to delete
// those addresses on time: the kernel's own deletion can be seconds late on an idle CPU (native/sweep.c).
import { EventEmitter } from 'node:events';
import { canonicalIPv6 } from '../common/ip.js';
import { createLogger, type Logger } from '../common/log.js';
import type { LocalAddress, VipRef } from './addresses.js';
import {
  checkRef,
  DATAPLANE,
  DataplaneError,
  DataplaneUnavailableError,
  DeadlineExpiredError,
  deadlineNs,
  FOREVER,
  monoNow,
  nsToMs,
  onLines,
  type AddResult,
  type HelperProcess,
  type SpawnHelper,
} from './dataplane-protocol.js';
import { nativeHelperPath, spawnNative } from './dataplane-spawn.js';

export {
  DATAPLANE,
  DataplaneError,
  DataplaneUnavailableError,
  DeadlineExpiredError,
  deadlineNs,
  type AddResult,
  type HelperProcess,
  type SpawnHelper,
} from './dataplane-protocol.js';
export { isExecutable, nativeHelperPath, spawnNative } from './dataplane-spawn.js';

export interface DataplaneOptions {
  spawn: SpawnHelper;
  log?: Logger;
  /** How long a request may wait for its answer (default 2000 ms). */
  timeoutMs?: number;
  /** The least time between two starts of the helper (default 250 ms), so that a crash loop does not spin. */
  restartDelayMs?: number;
  /** Monotonic milliseconds (default: process.hrtime, the helper's CLOCK_MONOTONIC). */
  mono?: () => number;
}

interface Pending {
  op: string;
  resolve: (fields: string[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  sentTo?: HelperProcess;
}

/**
 * Events: 'spawn' (pid); 'exit' ({ code, signal, expected }), expected only after close(); 'announced' (vip,
 * packets) for the announcement the helper sent on its own right after adding an address.
 */
export class Dataplane extends EventEmitter {
  private child: HelperProcess | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private readonly outbox: { id: number; line: string }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastStart = -Infinity;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly restartDelayMs: number;
  private readonly mono: () => number;
  /** Helpers started so far (1 after the first request; more after restarts). */
  starts = 0;

  constructor(private readonly opts: DataplaneOptions) {
    super();
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.restartDelayMs = opts.restartDelayMs ?? 250;
    this.mono = opts.mono ?? monoNow;
  }

  /** Adds an address, or replaces the lifetimes of one that is there; `announce`: GARP / NA right after a new add. */
  async addAddress(
    vip: VipRef,
    o: { validLft: number; preferredLft?: number; deadlineMs: number; announce?: boolean },
  ): Promise<AddResult> {
    checkRef(vip);
    const preferred = o.preferredLft ?? o.validLft;
    for (const n of [o.validLft, preferred])
      if (!Number.isInteger(n) || n < 1 || n >= FOREVER) throw new Error(`invalid lifetime ${n}`);
    const f = await this.request('add', deadlineNs(o.deadlineMs), [
      vip.iface,
      `${vip.address}/${vip.prefix}`,
      String(o.validLft),
      String(preferred),
      o.announce ? '1' : '0',
    ]);
    const announced = nsToMs(f[3]);
    if (announced > 0) this.emit('announced', vip, vip.family === 4 ? 2 : 1);
    return {
      created: f[0] === 'new',
      checkedAtMs: nsToMs(f[1]),
      ackedAtMs: nsToMs(f[2]),
      announcedAtMs: announced > 0 ? announced : undefined,
    };
  }

  /** Deletes an address; resolves false when it was not there. Never refused for lateness (removal is safe). */
  async deleteAddress(vip: VipRef): Promise<boolean> {
    checkRef(vip);
    const f = await this.request('del', '0', [vip.iface, `${vip.address}/${vip.prefix}`]);
    return f[0] === 'deleted';
  }

  /** Every address in the helper's network namespace. */
  async listAddresses(): Promise<LocalAddress[]> {
    const f = await this.request('list', '0', []);
    return f.map((t) => {
      const [iface, family, address, prefix, valid] = t.split('/');
      if (!iface || (family !== '4' && family !== '6') || !address || !prefix || !valid)
        throw new DataplaneError('list', 0, `cannot parse ${JSON.stringify(t)}`);
      const v = Number(valid);
      return {
        iface,
        family: family === '6' ? 6 : 4,
        address: family === '6' ? canonicalIPv6(address) : address,
        prefix: Number(prefix),
        validLft: v >= FOREVER ? null : v,
      };
    });
  }

  /** One gratuitous ARP in request form and one in reply form; refused when the address is not on the interface. */
  async garp(vip: VipRef, deadlineMs: number): Promise<number> {
    checkRef(vip);
    if (vip.family !== 4) throw new Error(`not an IPv4 VIP: ${vip.address}`);
    const f = await this.request('garp', deadlineNs(deadlineMs), [vip.iface, vip.address]);
    return nsToMs(f[0]);
  }

  /** One unsolicited neighbour advertisement; refused when the address is not (usable) on the interface. */
  async na(vip: VipRef, deadlineMs: number): Promise<number> {
    checkRef(vip);
    if (vip.family !== 6) throw new Error(`not an IPv6 VIP: ${vip.address}`);
    const f = await this.request('na', deadlineNs(deadlineMs), [vip.iface, vip.address]);
    return nsToMs(f[0]);
  }

  /**
   * Opens the fast fence for `addresses` (node-agent/native/fence.c): live elements ending at `expiresMs`, and their
   * gates, in one nf_tables transaction, checked against `deadlineMs` right before the kernel acts.
   */
  async fenceSet(table: string, addresses: readonly string[], o: { expiresMs: number; deadlineMs: number }) {
    const f = await this.request('fence', deadlineNs(o.deadlineMs), [
      'set',
      table,
      deadlineNs(o.expiresMs),
      addresses.join(','),
    ]);
    return { checkedAtMs: nsToMs(f[0]), ackedAtMs: nsToMs(f[1]), timeoutMs: Number(f[2]) };
  }

  /** Deletes the live and gated elements of `addresses` (absent ones are fine). Never refused for lateness. */
  async fenceDel(table: string, addresses: readonly string[]): Promise<void> {
    await this.request('fence', '0', ['del', table, addresses.join(',')]);
  }

  /** Starts the helper if it is not running; resolves with its pid. */
  async ping(): Promise<number> {
    const f = await this.request('ping', '0', []);
    return Number(f[0]);
  }

  /** Closes the helper's stdin; it exits. Requests in flight reject when it does. */
  close(): void {
    this.closed = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = undefined;
    for (const { id } of this.outbox.splice(0)) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (p) {
        clearTimeout(p.timer);
        p.reject(new DataplaneUnavailableError(p.op, 'closed'));
      }
    }
    this.child?.stdin.end();
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /**
   * Lines reach the helper in call order (the agent's address queue relies on it: a removal is never overtaken by
   * a renewal), also across a restart: requests made while no helper runs wait here and go out when one starts.
   */
  private request(op: string, deadline: string, args: string[]): Promise<string[]> {
    for (const a of args) if (!/^[^\s]+$/.test(a)) throw new Error(`invalid ${op} argument ${JSON.stringify(a)}`);
    if (this.closed) return Promise.reject(new DataplaneUnavailableError(op, 'closed'));
    const id = this.nextId++;
    const line = `${[id, deadline, op, ...args].join(' ')}\n`;
    return new Promise<string[]>((resolve, reject) => {
      const p: Pending = {
        op,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (!this.pending.delete(id)) return;
          reject(new DataplaneUnavailableError(op, `no answer within ${this.timeoutMs} ms; restarting the helper`));
          // Wedged (or lost a line): start afresh. Its other requests reject when it exits.
          if (p.sentTo && this.child === p.sentTo) p.sentTo.kill('SIGKILL');
        }, this.timeoutMs),
      };
      this.pending.set(id, p);
      if (this.child) this.send(this.child, id, line);
      else {
        this.outbox.push({ id, line });
        this.startSoon();
      }
    });
  }

  private send(child: HelperProcess, id: number, line: string): void {
    const p = this.pending.get(id);
    if (!p) return; // timed out while waiting for a helper
    p.sentTo = child;
    child.stdin.write(line);
  }

  private startSoon(): void {
    if (this.child || this.startTimer || this.closed) return;
    const start = () => {
      this.startTimer = undefined;
      if (this.closed || this.child) return;
      this.lastStart = this.mono();
      const child = this.startChild();
      for (const { id, line } of this.outbox.splice(0)) this.send(child, id, line);
    };
    const wait = this.lastStart + this.restartDelayMs - this.mono();
    if (wait > 0) this.startTimer = setTimeout(start, wait);
    else start();
  }

  private startChild(): HelperProcess {
    const child = this.opts.spawn();
    this.starts++;
    this.child = child;
    onLines(child.stdout, (line) => this.answer(line));
    // EPIPE after the helper died: the exit event reports it.
    child.stdin.on('error', () => undefined);
    let gone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
      if (gone) return;
      gone = true;
      if (this.child === child) this.child = undefined;
      const why = err ? `could not start: ${err.message}` : `exited (${signal ?? `code ${code}`})`;
      for (const [id, p] of this.pending) {
        if (p.sentTo !== child) continue; // waiting for the next helper
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new DataplaneUnavailableError(p.op, `helper ${why}`));
      }
      const expected = this.closed;
      if (!expected)
        this.opts.log?.warn(
          { pid: child.pid, code, signal, err: err?.message },
          `${DATAPLANE} ${why}: requests in flight failed (addresses keep their kernel lifetimes); the next request starts a new one`,
        );
      this.emit('exit', { code, signal, expected });
    };
    child.once('exit', (code, signal) => onGone(code, signal));
    child.once('error', (err) => onGone(null, null, err));
    this.emit('spawn', child.pid);
    return child;
  }

  private answer(line: string): void {
    const [idText, status, ...rest] = line.split(' ');
    let id = Number(idText);
    if (idText === '-') {
      // The helper could not read the request's id: it is the oldest one (answers come in request order).
      const oldest = this.pending.keys().next();
      if (oldest.done) return;
      id = oldest.value;
    }
    const p = this.pending.get(id);
    if (!p) {
      this.opts.log?.warn({ line }, `${DATAPLANE}: an answer to no request in flight (one that timed out?)`);
      return;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (status === 'ok') p.resolve(rest);
    else if (status === 'expired')
      p.reject(new DeadlineExpiredError(p.op, BigInt(/^\d+$/.test(rest[0] ?? '') ? rest[0]! : '0')));
    else if (status === 'error') p.reject(new DataplaneError(p.op, Number(rest[0]), rest.slice(1).join(' ')));
    else p.reject(new DataplaneError(p.op, 0, `unexpected answer ${JSON.stringify(line)}`));
  }
}

const shared = new Map<string, Dataplane>();

/**
 * One helper per binary for the whole process, shared by the address manager and the announcer (they are built
 * apart, in main.ts and agent.ts). Started at the first request, not here.
 */
export function sharedDataplane(bin: string = nativeHelperPath()): Dataplane {
  let dp = shared.get(bin);
  if (!dp) {
    dp = new Dataplane({ spawn: spawnNative(bin), log: createLogger({ name: DATAPLANE }) });
    shared.set(bin, dp);
  }
  return dp;
}
