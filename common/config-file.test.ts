import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigFileError, readYamlFile } from './config-file.js';

describe('readYamlFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vw-config-'));

  test('reads YAML', async () => {
    writeFileSync(join(dir, 'a.yaml'), 'a: 1\n');
    await expect(readYamlFile(join(dir, 'a.yaml'), 'agent config')).resolves.toEqual({ a: 1 });
  });

  test('a missing file is one line naming the file', async () => {
    const p = join(dir, 'missing.yaml');
    const err = await readYamlFile(p, 'agent config').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigFileError);
    expect((err as Error).message).toBe(`agent config ${p} does not exist (give another with --config)`);
  });

  test('a file that is not YAML says so in one line', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'a: [1\n');
    const err = (await readYamlFile(join(dir, 'bad.yaml'), 'agent config').catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/bad\.yaml: not valid YAML: /);
    expect(err.message).not.toContain('\n');
  });
});
