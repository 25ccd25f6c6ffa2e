import { describe, expect, test } from '@jest/globals';
import { compareVersions, etcdConnectionIssue, etcdVersionProblem, parseEtcdVersion } from './etcd.js';

describe('etcd server version', () => {
  test.each([
    // [version, accepted]
    ['3.4.23', false], // Debian 12's etcd-server
    ['3.4.30', false],
    ['3.4.31', false], // has #15247 fixed, not the keepalive/revoke race
    ['3.4.37', false],
    ['3.4.38', true],
    ['3.4.40', true],
    ['3.5.0', false],
    ['3.5.13', false],
    ['3.5.22', false],
    ['3.5.23', true],
    ['3.5.100', true],
    ['3.6.0', true],
    ['3.6.16', true],
    ['3.7.0', true],
    ['4.0.0', true],
    ['3.3.27', false],
    ['2.3.8', false],
    ['v3.5.23', true],
    ['3.6.0-rc.1', true],
  ])('%s accepted: %s', (v, ok) => {
    const p = etcdVersionProblem(v);
    if (ok) expect(p).toBeUndefined();
    else expect(p).toMatch(/is older than/);
  });

  test('names the minimum of the line and why', () => {
    expect(etcdVersionProblem('3.5.22')).toMatch(
      /3\.5\.22 is older than 3\.5\.23, the minimum for etcd 3\.5; .*lease bugs/,
    );
    expect(etcdVersionProblem('3.4.23')).toMatch(/older than 3\.4\.38, the minimum for etcd 3\.4/);
    expect(etcdVersionProblem('3.3.9')).toMatch(/older than 3\.4 \(supported: 3\.4\.38\+, 3\.5\.23\+, 3\.6\+\)/);
  });

  test('a configured minimum raises the bar but never lowers it', () => {
    expect(etcdVersionProblem('3.6.16', '3.6.17')).toMatch(/older than the configured minimum 3\.6\.17/);
    expect(etcdVersionProblem('3.6.16', '3.6.16')).toBeUndefined();
    expect(etcdVersionProblem('3.5.10', '3.0.0')).toMatch(/older than 3\.5\.23/);
    expect(etcdVersionProblem('3.6.16', 'x')).toMatch(/cannot parse the configured minimum/);
  });

  test('an unparsable server version is refused', () => {
    expect(etcdVersionProblem('')).toMatch(/cannot parse/);
    expect(etcdVersionProblem('3.6')).toMatch(/cannot parse/);
    expect(etcdVersionProblem('three')).toMatch(/cannot parse/);
  });

  test('compareVersions orders numerically, not as text', () => {
    expect(compareVersions(parseEtcdVersion('3.5.9')!, parseEtcdVersion('3.5.10')!)).toBeLessThan(0);
    expect(compareVersions(parseEtcdVersion('3.10.0')!, parseEtcdVersion('3.9.99')!)).toBeGreaterThan(0);
    expect(compareVersions(parseEtcdVersion('3.6.1')!, parseEtcdVersion('v3.6.1')!)).toBe(0);
  });
});

describe('etcd connection settings', () => {
  test('tls needs https endpoints, and schemes are not mixed', () => {
    expect(etcdConnectionIssue({ endpoints: ['https://127.0.0.1:2379'], tls: { ca: '/ca.pem' } })).toBeUndefined();
    expect(etcdConnectionIssue({ endpoints: ['http://127.0.0.1:2379'] })).toBeUndefined();
    expect(etcdConnectionIssue({ endpoints: ['http://127.0.0.1:2379'], tls: { ca: '/ca.pem' } })).toMatch(/https/);
    expect(etcdConnectionIssue({ endpoints: ['http://a:1', 'https://b:2'] })).toMatch(/mix/);
  });
});

describe('etcd settings in agent.yaml and controller.yaml', () => {
  const base = { node: 'node1' };
  test('tls and auth parse, and are checked', async () => {
    const { parseAgentConfig } = await import('../node-agent/config.js');
    const { parseControllerConfig } = await import('../controller/config.js');
    const tls = { ca: '/etc/vipwarden/ca.pem', cert: '/etc/vipwarden/node1.pem', key: '/etc/vipwarden/node1.key' };
    const a = parseAgentConfig({ ...base, etcd: { endpoints: ['https://10.0.0.1:2379'], tls } });
    expect(a.etcd.tls).toEqual(tls);
    expect(a.etcd.allowUnsupportedVersion).toBe(false);
    const c = parseControllerConfig({
      etcd: {
        endpoints: ['https://10.0.0.1:2379'],
        tls: { ca: '/ca.pem' },
        auth: { file: '/etc/vipwarden/etcd-auth' },
      },
      source: { directory: '/groups' },
    });
    expect(c.etcd.auth).toEqual({ file: '/etc/vipwarden/etcd-auth' });
    expect(() => parseAgentConfig({ ...base, etcd: { endpoints: ['http://10.0.0.1:2379'], tls } })).toThrow(
      /etcd\.endpoints: tls needs https:\/\/ endpoints/,
    );
    expect(() =>
      parseAgentConfig({ ...base, etcd: { endpoints: ['https://a:1'], tls: { ca: '/ca', cert: '/c' } } }),
    ).toThrow(/cert and key go together/);
    expect(() => parseAgentConfig({ ...base, etcd: { endpoints: ['https://a:1'], tls: { ca: 'ca.pem' } } })).toThrow(
      /etcd\.tls\.ca: must be an absolute path/,
    );
    expect(() => parseAgentConfig({ ...base, etcd: { endpoints: ['https://a:1'], minimumVersion: '3.6' } })).toThrow(
      /minimumVersion/,
    );
  });

  test('the auth file holds user:password', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { readEtcdAuthFile } = await import('./etcd.js');
    const d = mkdtempSync(join(tmpdir(), 'vw-auth-'));
    try {
      writeFileSync(join(d, 'ok'), '\nalice:pa:ss\n');
      expect(readEtcdAuthFile(join(d, 'ok'))).toEqual({ username: 'alice', password: 'pa:ss' });
      writeFileSync(join(d, 'bad'), 'alice\n');
      expect(() => readEtcdAuthFile(join(d, 'bad'))).toThrow(/expected one line "user:password"/);
      expect(() => readEtcdAuthFile(join(d, 'missing'))).toThrow(/ENOENT/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
