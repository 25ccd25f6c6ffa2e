// Issue 10, item 7: the metrics endpoints stay on loopback unless configured; without a metrics section none runs.
import { describe, expect, it } from '@jest/globals';
import { parseControllerConfig } from '../controller/config.js';
import { parseAgentConfig } from '../node-agent/config.js';

const etcd = { endpoints: ['http://127.0.0.1:2379'] };
const source = { directory: '/etc/vipwarden/groups' };

describe('metrics listen defaults', () => {
  it('agent: loopback by default, none without a section, the configured address otherwise', () => {
    expect(parseAgentConfig({ node: 'n1', etcd, metrics: {} }).metrics?.listen).toBe('127.0.0.1:9641');
    expect(parseAgentConfig({ node: 'n1', etcd }).metrics).toBeUndefined();
    expect(parseAgentConfig({ node: 'n1', etcd, metrics: { listen: '10.0.0.11:9641' } }).metrics?.listen).toBe(
      '10.0.0.11:9641',
    );
  });

  it('controller: loopback by default, none without a section', () => {
    expect(parseControllerConfig({ etcd, source, metrics: {} }).metrics?.listen).toBe('127.0.0.1:9642');
    expect(parseControllerConfig({ etcd, source }).metrics).toBeUndefined();
  });
});
