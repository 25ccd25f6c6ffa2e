import { describe, expect, test } from '@jest/globals';
import { parseCommandLine, UsageError } from './command-line.js';
import { VERSION } from './version.js';

const OPTS = { config: { type: 'string' }, 'log-level': { type: 'string' } } as const;

describe('parseCommandLine', () => {
  test('options by name', () => {
    expect(parseCommandLine(['--config', '/x.yaml', '--log-level=debug'], OPTS)).toEqual({
      kind: 'run',
      values: { config: '/x.yaml', 'log-level': 'debug' },
      positionals: [],
    });
  });

  test('--help, -h and --version', () => {
    expect(parseCommandLine(['--help'], OPTS).kind).toBe('help');
    expect(parseCommandLine(['--config', 'a', '-h'], OPTS).kind).toBe('help');
    expect(parseCommandLine(['--version'], OPTS).kind).toBe('version');
  });

  test.each([
    [['--confg', '/x.yaml'], 'unknown option --confg'],
    [['--config'], '--config needs a value'],
    [['stray'], 'unexpected argument stray'],
  ])('%j is an error: %s', (argv, msg) => {
    expect(() => parseCommandLine(argv, OPTS)).toThrow(new UsageError(msg));
  });

  test('the version is the one in package.json', () => {
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('values that start with a dash', () => {
  test('are values unless they are options', () => {
    const o = {
      timeout: { type: 'string' },
      output: { type: 'string', short: 'o' },
      unpin: { type: 'boolean' },
    } as const;
    expect(parseCommandLine(['--timeout', '-5'], o)).toMatchObject({ values: { timeout: '-5' } });
    expect(parseCommandLine(['-o', '-x'], o)).toMatchObject({ values: { output: '-x' } });
    expect(() => parseCommandLine(['--timeout', '--unpin'], o)).toThrow('--timeout needs a value');
    expect(() => parseCommandLine(['-o'], o)).toThrow(new UsageError('-o needs a value'));
  });
});
