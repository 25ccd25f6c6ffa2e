// The agent's Node.js flags: the same in every launcher, and all of them allowed in NODE_OPTIONS (the single
// executable gets them only from there).
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AGENT_NODE_FLAGS } from './node-flags.js';

const repo = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, repo), 'utf8');

describe('agent node flags', () => {
  test('bin/vipwarden-agent.js passes them on its #! line', () => {
    const first = read('bin/vipwarden-agent.js').split('\n')[0]!;
    expect(first).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
  });

  test('the systemd unit sets them as NODE_OPTIONS', () => {
    const m = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(read('deploy/systemd/vipwarden-agent.service'));
    expect(m?.[1]).toBe(AGENT_NODE_FLAGS.join(' '));
  });

  test('node accepts them in NODE_OPTIONS', () => {
    const out = execFileSync(process.execPath, ['-e', 'process.stdout.write("ok")'], {
      env: { ...process.env, NODE_OPTIONS: AGENT_NODE_FLAGS.join(' ') },
      encoding: 'utf8',
    });
    expect(out).toBe('ok');
  });
});
