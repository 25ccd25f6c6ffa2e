// The agent config parser: the fuzzer's counterexamples, kept as plain cases.
import { expect, test } from '@jest/globals';
import { ValidationError } from '../common/validation.js';
import { parseAgentConfig } from './config.js';

const base = { node: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] }, interface: 'eth0' };

test('an empty command argv is a ValidationError naming the field, not a TypeError (fuzz seed 1733562665)', () => {
  let err: unknown;
  try {
    parseAgentConfig({ ...base, commands: { 'haproxy-ok': { argv: [] } } }, 'agent.yaml');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ValidationError);
  expect(String((err as Error).message)).toContain('commands.haproxy-ok.argv');
});
