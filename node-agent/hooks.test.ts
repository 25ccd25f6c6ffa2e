import { CommandError, realExec, type Exec, type ExecOptions } from '../common/exec.js';
import { silentLogger } from '../common/log.js';
import { vipRef } from './addresses.js';
import { hookEnv, HookResource } from './hooks.js';
import type { ResourceContext } from './resources.js';

const vips = [vipRef('198.18.5.100/24', 'eth0'), vipRef('2001:2:0:5::100/64', 'eth1')];

function ctx(hooks: string[], opts: { current?: () => boolean } = {}): ResourceContext {
  return {
    group: 'web',
    node: 'node2',
    epoch: 42,
    vips,
    spec: { hooks } as ResourceContext['spec'],
    isCurrent: opts.current ?? (() => true),
    signal: new AbortController().signal,
    log: silentLogger(),
  };
}

function recorder(fail: (argv: readonly string[]) => Error | undefined = () => undefined) {
  const calls: { argv: string[]; opts: ExecOptions | undefined }[] = [];
  const exec: Exec = async (argv, opts) => {
    calls.push({ argv: [...argv], opts });
    const e = fail(argv);
    if (e) throw e;
    return { stdout: '', stderr: '', exitCode: 0 };
  };
  return { exec, calls };
}

const config = {
  hooks: {
    httpd: {
      acquire: ['/usr/sbin/service-start', 'httpd'],
      release: ['/usr/sbin/service-stop', 'httpd'],
      timeoutMs: 5000,
    },
    cache: { acquire: ['/usr/bin/cache', 'warm'], timeoutMs: 1000 },
    notify: { release: ['/usr/bin/notify'], timeoutMs: 2000 },
  },
};

describe('hookEnv', () => {
  it('tells the hook the group, VIPs, epoch and node', () => {
    expect(hookEnv(ctx([]), 'acquire')).toEqual({
      VIPWARDEN_EVENT: 'acquire',
      VIPWARDEN_GROUP: 'web',
      VIPWARDEN_NODE: 'node2',
      VIPWARDEN_EPOCH: '42',
      VIPWARDEN_VIPS: '198.18.5.100/24 2001:2:0:5::100/64',
      VIPWARDEN_ADDRESSES: '198.18.5.100 2001:2:0:5::100',
      VIPWARDEN_INTERFACES: 'eth0 eth1',
    });
  });
});

describe('HookResource', () => {
  it('runs acquire hooks in order and release hooks in reverse, with their timeouts and environment', async () => {
    const r = recorder();
    const res = new HookResource(r.exec, config);
    await res.acquire(ctx(['httpd', 'cache', 'notify']));
    await res.release(ctx(['httpd', 'cache', 'notify']));
    expect(r.calls.map((c) => [c.argv[0], c.opts?.timeoutMs, c.opts?.env?.VIPWARDEN_EVENT])).toEqual([
      ['/usr/sbin/service-start', 5000, 'acquire'],
      ['/usr/bin/cache', 1000, 'acquire'],
      ['/usr/bin/notify', 2000, 'release'],
      ['/usr/sbin/service-stop', 5000, 'release'],
    ]);
    expect(r.calls[0]!.opts?.env?.VIPWARDEN_EPOCH).toBe('42');
  });

  it('fails the acquire when a hook fails, and runs no later hook', async () => {
    const r = recorder((argv) =>
      argv[0] === '/usr/sbin/service-start' ? new CommandError(argv, 3, 'httpd: port in use\n') : undefined,
    );
    const res = new HookResource(r.exec, config);
    await expect(res.acquire(ctx(['httpd', 'cache']))).rejects.toThrow(
      'acquire hook "httpd" exited 3: httpd: port in use',
    );
    expect(r.calls).toHaveLength(1);
  });

  it('says so when a hook timed out', async () => {
    const r = recorder((argv) => new CommandError(argv, undefined, '', true));
    await expect(new HookResource(r.exec, config).acquire(ctx(['cache']))).rejects.toThrow(
      'acquire hook "cache" timed out after 1000 ms',
    );
  });

  it('refuses a hook that this node does not configure, before starting any', async () => {
    const r = recorder();
    await expect(new HookResource(r.exec, config).acquire(ctx(['httpd', 'nope']))).rejects.toThrow(
      'acquire hook "nope" is not in the agent configuration',
    );
    expect(r.calls).toHaveLength(0);
  });

  it('stops running acquire hooks once the assignment has moved on', async () => {
    const r = recorder();
    let current = true;
    const exec: Exec = async (argv, opts) => {
      current = false;
      return r.exec(argv, opts);
    };
    await new HookResource(exec, config).acquire(ctx(['httpd', 'cache'], { current: () => current }));
    expect(r.calls.map((c) => c.argv[0])).toEqual(['/usr/sbin/service-start']);
  });

  it('runs every release hook even when one fails, then reports the failures', async () => {
    const r = recorder((argv) => (argv[0] === '/usr/bin/notify' ? new CommandError(argv, 1, '') : undefined));
    await expect(new HookResource(r.exec, config).release(ctx(['httpd', 'notify']))).rejects.toThrow(
      'release hook "notify" exited 1',
    );
    expect(r.calls.map((c) => c.argv[0])).toEqual(['/usr/bin/notify', '/usr/sbin/service-stop']);
  });

  it('releases the hooks it started, even when the group is gone from the spec', async () => {
    const r = recorder((argv) => (argv[0] === '/usr/bin/cache' ? new CommandError(argv, 1, '') : undefined));
    const res = new HookResource(r.exec, config);
    await expect(res.acquire(ctx(['httpd', 'cache', 'notify']))).rejects.toThrow(/cache/);
    const gone = { ...ctx([]), spec: undefined };
    await res.release(gone);
    expect(r.calls.map((c) => c.argv[0])).toEqual([
      '/usr/sbin/service-start',
      '/usr/bin/cache',
      '/usr/sbin/service-stop',
    ]);
  });

  it('runs a real command with the environment and a timeout', async () => {
    const res = new HookResource(realExec, {
      hooks: {
        env: { acquire: ['/usr/bin/printenv', 'VIPWARDEN_VIPS'], timeoutMs: 5000 },
        slow: { acquire: ['/bin/sleep', '5'], timeoutMs: 200 },
        missing: { acquire: ['/nonexistent/hook'], timeoutMs: 1000 },
      },
    });
    await expect(res.acquire(ctx(['env']))).resolves.toBeUndefined();
    await expect(res.acquire(ctx(['slow']))).rejects.toThrow('timed out after 200 ms');
    await expect(res.acquire(ctx(['missing']))).rejects.toThrow(/acquire hook "missing"/);
  });
  it('kills an acquire hook when the group is let go of (issue 15 item 10), never a release hook', async () => {
    const res = new HookResource(realExec, {
      hooks: { slow: { acquire: ['/bin/sleep', '5'], release: ['/bin/sleep', '0.3'], timeoutMs: 10_000 } },
    });
    const ac = new AbortController();
    const t0 = performance.now();
    const acquiring = res.acquire({ ...ctx(['slow']), signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(acquiring).rejects.toThrow('acquire hook "slow" killed: the group was let go of');
    expect(performance.now() - t0).toBeLessThan(2000);
    // The release hook gets no abort signal: it runs to its end even when the caller's signal is aborted.
    const r = recorder();
    await new HookResource(r.exec, config).release({ ...ctx(['httpd']), signal: ac.signal });
    expect(r.calls[0]!.opts?.signal).toBeUndefined();
  });
});
