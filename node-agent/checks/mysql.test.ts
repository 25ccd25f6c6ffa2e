import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthCheck } from '../../crds/failovergroup.js';
import {
  credentialsFor,
  endpointFor,
  judgeMysql,
  mysqlCheck,
  parseOptionFile,
  replicaStatusOf,
  type MysqlCheckSpec,
} from './mysql.js';
import type { AgentConfig } from '../config.js';
import { fixture } from '../../common/testing/fixture.js';

const spec = (m: Record<string, unknown> = {}) => {
  const c = HealthCheck.parse({ name: 'db', type: 'mysql', mysql: m });
  return c;
};
const mysqlSpec = (m: Record<string, unknown> = {}): MysqlCheckSpec => spec(m).mysql!;

describe('parseOptionFile', () => {
  it('reads user, password and socket from [client], later lines winning', () => {
    const text = fixture(import.meta.url, 'client.cnf');
    expect(parseOptionFile(text)).toEqual({
      user: 'vwcheck',
      password: 'se#cret "x"',
      socket: '/run/mysqld/mysqld.sock',
    });
  });

  it('strips a trailing comment from a bare value and keeps an empty password', () => {
    expect(parseOptionFile('[client]\nuser = a # the user\npassword =\n')).toEqual({ user: 'a', password: '' });
  });

  it('treats - and _ alike and group names case-insensitively', () => {
    expect(parseOptionFile('[CLIENT]\nUSER=x\n')).toEqual({ user: 'x' });
  });

  it('refuses what it cannot honour, with the line number', () => {
    expect(() => parseOptionFile('!include /etc/other.cnf\n')).toThrow(/line 1: !include is not supported/);
    expect(() => parseOptionFile('user=x\n')).toThrow(/line 1: option outside of a \[group\]/);
    expect(() => parseOptionFile('[client]\npassword="abc\n')).toThrow(/line 2: unterminated quote/);
    expect(() => parseOptionFile('[client]\nsocket=relative.sock\n')).toThrow(
      /line 2: socket must be an absolute path/,
    );
    expect(() => parseOptionFile('[client\n')).toThrow(/bad group header/);
  });
});

describe('endpointFor', () => {
  it('prefers the group socket, then the file socket, then host and port', () => {
    expect(
      endpointFor(mysqlSpec({ socket: '/a.sock' }), { user: 'u', password: 'p', socket: '/b.sock' }, 'root'),
    ).toEqual({ socketPath: '/a.sock', user: 'u', password: 'p' });
    expect(endpointFor(mysqlSpec({}), { user: 'u', socket: '/b.sock' }, 'root')).toEqual({
      socketPath: '/b.sock',
      user: 'u',
    });
    expect(endpointFor(mysqlSpec({ host: '198.18.0.5', port: 3307 }), { user: 'u', password: 'p' }, 'root')).toEqual({
      host: '198.18.0.5',
      port: 3307,
      user: 'u',
      password: 'p',
    });
  });

  it('connects as the OS user without credentials', () => {
    expect(endpointFor(mysqlSpec({}), undefined, 'root')).toEqual({ host: '127.0.0.1', port: 3306, user: 'root' });
  });
});

describe('replicaStatusOf', () => {
  it('folds MySQL 8 and MariaDB column names', () => {
    expect(
      replicaStatusOf({ Replica_IO_Running: 'Yes', Replica_SQL_Running: 'Yes', Seconds_Behind_Source: 3 }),
    ).toEqual({ ioRunning: 'Yes', sqlRunning: 'Yes', lagSeconds: 3 });
    expect(
      replicaStatusOf({
        Slave_IO_Running: 'Connecting',
        Slave_SQL_Running: 'Yes',
        Seconds_Behind_Master: null,
        Last_IO_Error: 'error connecting to master',
      }),
    ).toEqual({
      ioRunning: 'Connecting',
      sqlRunning: 'Yes',
      lagSeconds: null,
      lastError: 'error connecting to master',
    });
    expect(replicaStatusOf(undefined)).toBeNull();
  });
});

describe('judgeMysql', () => {
  const running = { ioRunning: 'Yes', sqlRunning: 'Yes', lagSeconds: 2 };
  it.each([
    ['plain SELECT 1', {}, { readOnly: false }, true, /SELECT 1 ok/],
    ['read_only as expected', { expectReadOnly: true }, { readOnly: true }, true, /read_only=1/],
    ['read_only unexpected', { expectReadOnly: false }, { readOnly: true }, false, /read_only is ON, expected OFF/],
    [
      'writable where a read-only replica is expected',
      { expectReadOnly: true },
      { readOnly: false },
      false,
      /read_only is OFF, expected ON/,
    ],
    [
      'replication running',
      { replication: {} },
      { readOnly: true, replica: running },
      true,
      /replication running, lag 2s/,
    ],
    ['not a replica', { replication: {} }, { readOnly: true, replica: null }, false, /not a replica/],
    [
      'IO thread stopped',
      { replication: {} },
      { readOnly: true, replica: { ...running, ioRunning: 'No' } },
      false,
      /IO thread is No/,
    ],
    [
      'SQL thread stopped',
      { replication: {} },
      { readOnly: true, replica: { ...running, sqlRunning: 'No', lastError: 'dup key' } },
      false,
      /SQL thread is No \(dup key\)/,
    ],
    ['lag within bound', { replication: { maxLagSeconds: 2 } }, { readOnly: true, replica: running }, true, /lag 2s/],
    [
      'lag over bound',
      { replication: { maxLagSeconds: 1 } },
      { readOnly: true, replica: running },
      false,
      /lag 2s exceeds 1s/,
    ],
    [
      'lag unknown',
      { replication: { maxLagSeconds: 5 } },
      { readOnly: true, replica: { ...running, lagSeconds: null } },
      false,
      /lag is unknown/,
    ],
  ])('%s', (_name, m, obs, ok, msg) => {
    const r = judgeMysql(mysqlSpec(m), obs);
    expect(r.ok).toBe(ok);
    expect(r.message).toMatch(msg);
  });
});

describe('credentials', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vw-mycnf-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('follows check -> credentials name -> path from the agent configuration', async () => {
    const path = join(dir, 'db.cnf');
    writeFileSync(path, '[client]\nuser=vw\npassword=pw\n');
    await expect(credentialsFor(mysqlSpec({ credentials: 'db' }), { credentials: { db: path } })).resolves.toEqual({
      user: 'vw',
      password: 'pw',
    });
    await expect(credentialsFor(mysqlSpec({}), { credentials: { db: path } })).resolves.toBeUndefined();
  });

  it('fails the check with a clear message when the name or file is missing', async () => {
    const config = { credentials: { gone: join(dir, 'nope.cnf') } } as unknown as AgentConfig;
    const exec = async () => ({ stdout: '', stderr: '', exitCode: 0 });
    const signal = new AbortController().signal;
    await expect(mysqlCheck(spec({ credentials: 'db' }), { exec, config }, signal)).resolves.toEqual({
      ok: false,
      message: 'credentials "db" are not in the agent configuration',
    });
    await expect(mysqlCheck(spec({ credentials: 'gone' }), { exec, config }, signal)).resolves.toEqual({
      ok: false,
      message: expect.stringMatching(/cannot read credentials file .*nope\.cnf: ENOENT/),
    });
  });

  it('reports a refused connection as a failure', async () => {
    const config = { credentials: {} } as unknown as AgentConfig;
    const exec = async () => ({ stdout: '', stderr: '', exitCode: 0 });
    // A unix socket path that does not exist: no network involved.
    const r = await mysqlCheck(spec({ socket: join(dir, 'no.sock') }), { exec, config }, new AbortController().signal);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/ENOENT/);
  });
});
