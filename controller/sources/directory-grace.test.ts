// A file that disappears (an editor deleting and rewriting it) must not delete its group at once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { silentLogger } from '../../common/log.js';
import { DirectorySource } from './directory.js';

const doc =
  'apiVersion: vipwarden.io/v1alpha1\nkind: FailoverGroup\nmetadata: {name: web}\nspec:\n  vips: [{address: 198.18.0.100/24}]\n  nodes: [{name: node1}]\n';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vw-dir-'));
  dirs.push(d);
  return d;
}

describe('DirectorySource deletion grace', () => {
  test('a group whose file went away stays until the grace has passed', async () => {
    const d = dir();
    writeFileSync(join(d, 'web.yaml'), doc);
    const src = new DirectorySource(d, silentLogger(), 60_000, 200);
    await src.scan();
    expect(src.list().map((g) => g.name)).toEqual(['web']);
    rmSync(join(d, 'web.yaml'));
    await src.scan();
    expect(src.list().map((g) => [g.name, g.group?.spec.vips[0]?.address])).toEqual([['web', '198.18.0.100/24']]);
    // Rewritten within the grace: nothing happened.
    writeFileSync(join(d, 'web.yaml'), doc);
    await src.scan();
    expect(src.list().map((g) => g.name)).toEqual(['web']);
    rmSync(join(d, 'web.yaml'));
    await src.scan();
    await new Promise((r) => setTimeout(r, 250));
    await src.scan();
    expect(src.list()).toEqual([]);
  });

  test('with no grace the group goes at the first scan', async () => {
    const d = dir();
    writeFileSync(join(d, 'web.yaml'), doc);
    const src = new DirectorySource(d, silentLogger(), 60_000, 0);
    await src.scan();
    rmSync(join(d, 'web.yaml'));
    await src.scan();
    expect(src.list()).toEqual([]);
  });
});

describe('DirectorySource synced', () => {
  test('not synced until the first scan is done: an empty list before it means nothing (the leader reads etcd)', async () => {
    const d = dir();
    writeFileSync(join(d, 'web.yaml'), doc);
    const src = new DirectorySource(d, silentLogger(), 60_000, 0);
    expect(src.synced()).toBe(false);
    expect(src.list()).toEqual([]);
    const scanning = src.scan();
    expect(src.synced()).toBe(false);
    await scanning;
    expect(src.synced()).toBe(true);
    expect(src.list().map((g) => g.name)).toEqual(['web']);
  });
});
