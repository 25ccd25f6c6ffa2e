// The controller's id: config, then VIPWARDEN_CONTROLLER_ID (the chart's pod name), then hostname-pid.
import { describe, expect, it } from '@jest/globals';
import { hostname } from 'node:os';
import { parseControllerConfig } from './config.js';

const raw = { etcd: { endpoints: ['https://127.0.0.1:2379'] }, source: { directory: '/etc/vipwarden/groups' } };

describe('controller id', () => {
  it('comes from the config first, then VIPWARDEN_CONTROLLER_ID, then hostname-pid', () => {
    const env = { VIPWARDEN_CONTROLLER_ID: 'vipwarden-controller-7d9f-abcde' };
    expect(parseControllerConfig({ ...raw, id: 'c1' }, 'test', env).id).toBe('c1');
    // Two hostNetwork replicas share the hostname and both run as pid 1: the pod name tells them apart.
    expect(parseControllerConfig(raw, 'test', env).id).toBe('vipwarden-controller-7d9f-abcde');
    expect(parseControllerConfig(raw, 'test', {}).id).toBe(`${hostname()}-${process.pid}`);
    expect(parseControllerConfig(raw, 'test', { VIPWARDEN_CONTROLLER_ID: '  ' }).id).toBe(
      `${hostname()}-${process.pid}`,
    );
  });
});
