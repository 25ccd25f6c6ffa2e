// The agent's Node.js flags and malloc settings: the same in every launcher, and every flag allowed in NODE_OPTIONS
// (the single executable gets them only from there).
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { AGENT_GLIBC_TUNABLES, AGENT_NODE_FLAGS } from './node-flags.js';

const repo = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, repo), 'utf8');

/** The agent container's env of a DaemonSet manifest, as name → value. */
function daemonSetEnv(text: string): Map<string, unknown> {
  const ds = parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string; spec?: { template: { spec: { containers: { env?: unknown[] }[] } } } })
    .find((d) => d?.kind === 'DaemonSet');
  const env = (ds?.spec?.template.spec.containers[0]?.env ?? []) as { name: string; value?: unknown }[];
  return new Map(env.map((e) => [e.name, e.value]));
}

describe('agent node flags', () => {
  test('bin/vipwarden-agent.js passes them on its #! line', () => {
    const first = read('bin/vipwarden-agent.js').split('\n')[0]!;
    expect(first).toBe(`#!/usr/bin/env -S GLIBC_TUNABLES=${AGENT_GLIBC_TUNABLES} node ${AGENT_NODE_FLAGS.join(' ')}`);
    // Linux reads at most 255 bytes of a #! line.
    expect(first.length).toBeLessThan(255);
  });

  test('the systemd unit sets them as NODE_OPTIONS and GLIBC_TUNABLES', () => {
    const unit = read('deploy/systemd/vipwarden-agent.service');
    expect(/^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(unit)?.[1]).toBe(AGENT_NODE_FLAGS.join(' '));
    expect(/^Environment="GLIBC_TUNABLES=([^"]*)"$/m.exec(unit)?.[1]).toBe(AGENT_GLIBC_TUNABLES);
  });

  test('the DaemonSet (manifests and chart) sets them in the agent container', () => {
    const env = daemonSetEnv(read('deploy/kubernetes/05-agent.yaml'));
    expect(env.get('NODE_OPTIONS')).toBe(AGENT_NODE_FLAGS.join(' '));
    expect(env.get('GLIBC_TUNABLES')).toBe(AGENT_GLIBC_TUNABLES);
    // deploy/kubernetes is rendered from the chart (a drift test checks that); the template holds the same text.
    const chart = read('deploy/helm/vipwarden/templates/05-agent.yaml');
    expect(chart).toContain(`value: ${AGENT_NODE_FLAGS.join(' ')}\n`);
    expect(chart).toContain(`value: ${AGENT_GLIBC_TUNABLES}\n`);
  });

  test('node accepts them in NODE_OPTIONS, and glibc the tunables', () => {
    const out = execFileSync(process.execPath, ['-e', 'process.stdout.write("ok")'], {
      env: { ...process.env, NODE_OPTIONS: AGENT_NODE_FLAGS.join(' '), GLIBC_TUNABLES: AGENT_GLIBC_TUNABLES },
      encoding: 'utf8',
    });
    expect(out).toBe('ok');
  });
});
