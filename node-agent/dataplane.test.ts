import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { silentLogger } from '../common/log.js';
import { AddressManager, DeadlinePassedError, vipRef } from './addresses.js';
import { CommandAnnouncer } from './announce.js';
import { onLines } from './dataplane-protocol.js';
import {
  Dataplane,
  DataplaneError,
  DataplaneUnavailableError,
  DeadlineExpiredError,
  deadlineNs,
  type HelperProcess,
} from './dataplane.js';

type Responder = (f: string[]) => string | undefined;

/** A fake vipwarden-dataplane: records request lines, answers through `respond` (undefined: no answer). */
class FakeHelper extends EventEmitter implements HelperProcess {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly pid: number;
  readonly lines: string[] = [];
  readonly kills: string[] = [];
  stdinEnded = false;

  constructor(
    pid: number,
    private respond: Responder,
  ) {
    super();
    this.pid = pid;
    onLines(this.stdin, (line) => {
      this.lines.push(line);
      const a = this.respond(line.split(' '));
      if (a !== undefined) this.stdout.write(`${a}\n`);
    });
    this.stdin.on('end', () => {
      this.stdinEnded = true;
      this.exit(0, null);
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.kills.push(signal);
    this.exit(null, signal);
    return true;
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    setImmediate(() => this.emit('exit', code, signal));
  }
}

const okAll: Responder = (f) => {
  const [id, , op] = f;
  switch (op) {
    case 'add':
      return `${id} ok new 1000000 2000000 2050000`;
    case 'del':
      return `${id} ok deleted`;
    case 'list':
      return `${id} ok lo/4/127.0.0.1/8/4294967295/4294967295/128 eth0/4/198.18.5.100/24/3/3/0 eth0/6/2001:2:0:5:0:0:0:100/64/3/3/2 eth1/4/198.18.6.1/24/4294967295/4294967295/128`;
    case 'garp':
    case 'na':
      return `${id} ok 3000000`;
    case 'ping':
      return `${id} ok 4242`;
    default:
      return `${id} error 22 unknown request`;
  }
};

function harness(
  respond: Responder = okAll,
  opts: { timeoutMs?: number; restartDelayMs?: number; mono?: () => number } = {},
) {
  const helpers: FakeHelper[] = [];
  const dp = new Dataplane({
    spawn: () => {
      const h = new FakeHelper(100 + helpers.length, (f) => respond(f));
      helpers.push(h);
      return h;
    },
    log: silentLogger(),
    timeoutMs: opts.timeoutMs ?? 1000,
    restartDelayMs: opts.restartDelayMs ?? 0,
    ...(opts.mono ? { mono: opts.mono } : {}),
  });
  return { dp, helpers, last: () => helpers[helpers.length - 1]! };
}

const v4 = vipRef('198.18.5.100/24', 'eth0');
const v6 = vipRef('2001:2:0:5::100/64', 'eth0');

describe('Dataplane client', () => {
  it('writes one line per request with the deadline in nanoseconds and parses the answer', async () => {
    const { dp, helpers } = harness();
    expect(helpers).toHaveLength(0); // nothing starts before the first request
    const r = await dp.addAddress(v4, { validLft: 3, deadlineMs: 1234.5678919, announce: true });
    expect(helpers).toHaveLength(1);
    expect(helpers[0]!.lines).toEqual(['1 1234567891 add eth0 198.18.5.100/24 3 3 1']);
    expect(r).toEqual({ created: true, checkedAtMs: 1, ackedAtMs: 2, announcedAtMs: 2.05 });
    await dp.deleteAddress(v6);
    expect(helpers[0]!.lines[1]).toBe('2 0 del eth0 2001:2:0:5::100/64');
  });

  it('matches answers to requests by id, whatever their order', async () => {
    const held: string[][] = [];
    const { dp, last } = harness((f) => {
      held.push(f);
      return undefined;
    });
    const a = dp.garp(v4, 10_000);
    const b = dp.na(v6, 10_000);
    const c = dp.ping();
    while (held.length < 3) await new Promise((r) => setImmediate(r));
    last().stdout.write('3 ok 99\n2 ok 2000');
    last().stdout.write('000\n1 ok 1000000\n'); // an answer split across reads
    await expect(Promise.all([a, b, c])).resolves.toEqual([1, 2, 99]);
  });

  it('maps expired and error answers to typed errors', async () => {
    const { dp } = harness((f) =>
      f[2] === 'add' ? `${f[0]} expired 1500000` : `${f[0]} error 99 not a usable address: Cannot assign`,
    );
    const late = await dp.addAddress(v4, { validLft: 3, deadlineMs: 1 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(DeadlineExpiredError);
    expect((late as DeadlineExpiredError).lateNs).toBe(1_500_000n);
    const err = await dp.garp(v4, 10_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataplaneError);
    expect((err as DataplaneError).errno).toBe(99);
  });

  it('rejects the oldest request when the helper could not read a line', async () => {
    const { dp } = harness((f) => (f[2] === 'ping' ? '- error 22 bad request' : okAll(f)));
    await expect(dp.ping()).rejects.toBeInstanceOf(DataplaneError);
    await expect(dp.garp(v4, 10_000)).resolves.toBe(3);
  });

  it('lists addresses: canonical IPv6, null for forever', async () => {
    const { dp } = harness();
    const all = await dp.listAddresses();
    expect(all).toContainEqual({ iface: 'eth0', family: 6, address: '2001:2:0:5::100', prefix: 64, validLft: 3 });
    expect(all).toContainEqual({ iface: 'eth1', family: 4, address: '198.18.6.1', prefix: 24, validLft: null });
  });

  it('times out a request, kills the wedged helper and starts a new one for the next request', async () => {
    let answer = false;
    const { dp, helpers } = harness((f) => (answer ? okAll(f) : undefined), { timeoutMs: 30 });
    const exits: unknown[] = [];
    dp.on('exit', (e) => exits.push(e));
    await expect(dp.garp(v4, 10_000)).rejects.toBeInstanceOf(DataplaneUnavailableError);
    expect(helpers[0]!.kills).toEqual(['SIGKILL']);
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([{ code: null, signal: 'SIGKILL', expected: false }]);
    answer = true;
    await expect(dp.ping()).resolves.toBe(4242);
    expect(dp.starts).toBe(2);
  });

  it('fails every request in flight at once when the helper dies, and restarts no sooner than the delay', async () => {
    const { dp, helpers } = harness(() => undefined, { timeoutMs: 60_000, restartDelayMs: 40, mono: () => 0 });
    const t0 = Date.now();
    const inFlight = [dp.ping(), dp.garp(v4, 10_000), dp.deleteAddress(v4)];
    await new Promise((r) => setImmediate(r));
    helpers[0]!.exit(null, 'SIGSEGV');
    const results = await Promise.allSettled(inFlight);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DataplaneUnavailableError);
    expect(Date.now() - t0).toBeLessThan(1000); // not after the 60 s timeout
    expect(dp.running).toBe(false);
    const again = dp.ping();
    await new Promise((r) => setTimeout(r, 5));
    expect(helpers).toHaveLength(1); // still waiting out the restart delay
    await new Promise((r) => setTimeout(r, 60));
    expect(helpers).toHaveLength(2);
    helpers[1]!.stdout.write('4 ok 7\n');
    await expect(again).resolves.toBe(7);
  });

  it('close() ends the helper through its stdin; later requests are refused', async () => {
    const { dp, helpers } = harness();
    await dp.ping();
    const exited = new Promise((r) => dp.once('exit', r));
    dp.close();
    await expect(exited).resolves.toEqual({ code: 0, signal: null, expected: true });
    expect(helpers[0]!.stdinEnded).toBe(true);
    await expect(dp.ping()).rejects.toBeInstanceOf(DataplaneUnavailableError);
    expect(helpers).toHaveLength(1);
  });

  it('validates what reaches the helper', async () => {
    const { dp, helpers } = harness();
    await expect(dp.addAddress({ ...v4, iface: 'eth0 1 del' }, { validLft: 3, deadlineMs: 1 })).rejects.toThrow(
      /invalid VIP/,
    );
    await expect(dp.addAddress(v4, { validLft: 0, deadlineMs: 1 })).rejects.toThrow(/lifetime/);
    await expect(dp.addAddress(v4, { validLft: 3, deadlineMs: NaN })).rejects.toThrow(/deadline/);
    await expect(dp.garp(v6, 1)).rejects.toThrow(/IPv4/);
    expect(helpers).toHaveLength(0);
    expect(deadlineNs(1.5)).toBe('1500000');
  });
});

describe('AddressManager over the helper', () => {
  it('uses the helper built beside vw-before (what agent.ts passes), else the ip command path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vw-dp-'));
    const exec = async () => ({ stdout: '', stderr: '', exitCode: 0 });
    try {
      expect(new AddressManager(exec, join(dir, 'vw-before')).dataplane).toBeUndefined();
      await writeFile(join(dir, 'vipwarden-dataplane'), '#!/bin/sh\n', { mode: 0o755 });
      const am = new AddressManager(exec, join(dir, 'vw-before'));
      expect(am.dataplane).toBeInstanceOf(Dataplane);
      expect(am.dataplane!.running).toBe(false); // started by the first request, not by the constructor
      expect(new AddressManager(exec).dataplane).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('adds each address with the deadline, announcing new IPv4 addresses at once', async () => {
    const { dp, last } = harness();
    const am = new AddressManager(async () => ({ stdout: '', stderr: '', exitCode: 0 }), dp);
    const announced: unknown[] = [];
    dp.on('announced', (v, n) => announced.push([v.address, n]));
    await am.ensure([v4, v6], 7, { deadlineMs: 5000 });
    expect(last().lines).toEqual([
      '1 5000000000 add eth0 198.18.5.100/24 7 7 1',
      '2 5000000000 add eth0 2001:2:0:5::100/64 7 7 0',
    ]);
    expect(announced).toEqual([
      ['198.18.5.100', 2],
      ['2001:2:0:5::100', 1],
    ]);
  });

  it('throws DeadlinePassedError when the helper refused any of them', async () => {
    const { dp } = harness((f) => (f[2] === 'add' && f[4]?.startsWith('2001') ? `${f[0]} expired 1` : okAll(f)));
    const am = new AddressManager(async () => ({ stdout: '', stderr: '', exitCode: 0 }), dp);
    await expect(am.ensure([v4, v6], 3, { deadlineMs: 5000 })).rejects.toBeInstanceOf(DeadlinePassedError);
  });

  it('removes through the helper, asking a new helper once when the old one died under the request', async () => {
    let first = true;
    const { dp, helpers } = harness((f) => {
      if (first && f[2] === 'del') {
        first = false;
        setImmediate(() => helpers[0]!.exit(null, 'SIGKILL'));
        return undefined;
      }
      return okAll(f);
    });
    const am = new AddressManager(async () => ({ stdout: '', stderr: '', exitCode: 0 }), dp);
    await am.remove([v4]);
    expect(helpers).toHaveLength(2);
    expect(helpers[1]!.lines).toEqual(['2 0 del eth0 198.18.5.100/24']);
  });

  it('does not swallow a removal the kernel refused', async () => {
    const { dp } = harness((f) => `${f[0]} error 1 RTM_DELADDR: Operation not permitted`);
    const am = new AddressManager(async () => ({ stdout: '', stderr: '', exitCode: 0 }), dp);
    await expect(am.remove([v4])).rejects.toThrow(/could not remove 198.18.5.100/);
  });

  it('lists over netlink, filtered by interface, without running ip', async () => {
    const { dp } = harness();
    const exec = jest.fn(async () => ({ stdout: '[]', stderr: '', exitCode: 0 }));
    const am = new AddressManager(exec, dp);
    const got = await am.list(['eth0']);
    expect(got.map((a) => a.address)).toEqual(['198.18.5.100', '2001:2:0:5::100']);
    expect(exec).not.toHaveBeenCalled();
  });
});

describe('CommandAnnouncer over the helper', () => {
  const noExec = jest.fn(async () => ({ stdout: '', stderr: '', exitCode: 0 }));

  it('sends a burst of gratuitous ARPs through the helper, spaced, without arping', async () => {
    const { dp, last } = harness();
    const sent: number[] = [];
    const a = new CommandAnnouncer(noExec, silentLogger(), undefined, (_v, n) => sent.push(n), dp);
    await a.send(v4, 3);
    expect(last().lines.map((l) => l.split(' ').slice(2).join(' '))).toEqual([
      'garp eth0 198.18.5.100',
      'garp eth0 198.18.5.100',
      'garp eth0 198.18.5.100',
    ]);
    expect(sent).toEqual([2, 2, 2]);
    expect(noExec).not.toHaveBeenCalled();
  });

  it("counts the helper's announcement on add with the first packet of the burst", async () => {
    const { dp } = harness();
    const sent: [string, number][] = [];
    const a = new CommandAnnouncer(noExec, silentLogger(), undefined, (v, n) => sent.push([v.address, n]), dp);
    const am = new AddressManager(noExec, dp);
    await am.ensure([v4], 3, { deadlineMs: 5000 });
    expect(sent).toEqual([]); // not yet: the metrics may not know the VIP's group before the acquire goes on
    await a.send(v4, 2);
    expect(sent).toEqual([
      ['198.18.5.100', 4],
      ['198.18.5.100', 2],
    ]);
  });

  it('stops a burst when aborted and hides the refusal of a send under way', async () => {
    const ac = new AbortController();
    const { dp, last } = harness((f) => {
      ac.abort();
      return `${f[0]} error 99 not a usable address`;
    });
    const a = new CommandAnnouncer(noExec, silentLogger(), undefined, undefined, dp);
    await expect(a.send(v4, 5, ac.signal)).resolves.toBeUndefined();
    expect(last().lines).toHaveLength(1);
  });

  it('announces IPv6 through the helper only when NA is configured', async () => {
    const { dp, helpers } = harness();
    const off = new CommandAnnouncer(noExec, silentLogger(), undefined, undefined, dp);
    await off.send(v6, 2);
    expect(helpers).toHaveLength(0);
    const sendNa = jest.fn(async () => undefined);
    const on = new CommandAnnouncer(noExec, silentLogger(), sendNa, undefined, dp);
    await on.send(v6, 2);
    expect(helpers[0]!.lines.map((l) => l.split(' ')[2])).toEqual(['na', 'na']);
    expect(sendNa).not.toHaveBeenCalled();
  });
});
