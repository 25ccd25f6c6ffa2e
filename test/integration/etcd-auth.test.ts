// etcd authentication the way vipwarden's components use it (issue 10, item 1): TLS with client certificates, and
// a user and password read from a file as the alternative. With etcd's auth on, a client certificate's CN is the
// user; a password login (token) takes precedence over it.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { connectEtcd } from '../../common/etcd.js';
import { run } from '../../hack/testbed/util.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
const ctl = (...args: string[]) =>
  run([etcd.binaries.etcdctl, `--endpoints=${etcd.endpoints.join(',')}`, ...etcd.etcdctlFlags(), ...args]);

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  await ctl('user', 'add', 'root', '--new-user-password=root-secret');
  await ctl('user', 'grant-role', 'root', 'root');
  await ctl('user', 'add', 'alice', '--new-user-password=alice:s3cret');
  await ctl('role', 'add', 'a-writer');
  await ctl('role', 'grant-permission', 'a-writer', '--prefix=true', 'readwrite', '/a/');
  await ctl('user', 'grant-role', 'alice', 'a-writer');
  await ctl('auth', 'enable');
});
afterAll(async () => {
  await etcd?.stop();
});

async function attempt(cfg: Parameters<typeof connectEtcd>[0], key: string): Promise<string> {
  const c = connectEtcd({ ...cfg, timeoutMs: 3000 });
  try {
    await c.put(key).value('v');
    return 'ok';
  } catch (err) {
    return String(err);
  } finally {
    c.close();
  }
}

describe('etcd auth', () => {
  test('user and password from a file: allowed where the role allows, denied elsewhere', async () => {
    const file = join(etcd.dir, 'alice.auth');
    writeFileSync(file, 'alice:alice:s3cret\n'); // the password may hold a colon: split at the first one
    chmodSync(file, 0o600);
    // A certificate whose CN is no etcd user: only the password login can grant anything.
    const cfg = { ...etcd.clientConfig({ user: 'nobody' }), auth: { file } };
    expect(await attempt(cfg, '/a/x')).toBe('ok');
    expect(await attempt(cfg, '/b/x')).toMatch(/permission denied/i);
    expect(await attempt(etcd.clientConfig({ user: 'nobody' }), '/a/y')).not.toBe('ok');
  });

  test('a wrong password is refused', async () => {
    const file = join(etcd.dir, 'wrong.auth');
    writeFileSync(file, 'alice:nope\n');
    expect(await attempt({ ...etcd.clientConfig({ user: 'nobody' }), auth: { file } }, '/a/z')).toMatch(
      /authentication failed|invalid/i,
    );
  });

  test('the client certificate CN is the user when no password is given', async () => {
    expect(await attempt(etcd.clientConfig({ user: 'alice' }), '/a/cn')).toBe('ok');
    expect(await attempt(etcd.clientConfig({ user: 'alice' }), '/b/cn')).toMatch(/permission denied/i);
  });
});
