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
