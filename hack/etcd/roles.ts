// Least-privilege etcd users and roles on a test cluster, made by the deployable script deploy/etcd/setup.sh.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { EtcdCluster } from '../testbed/etcd.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = [resolve(here, '..', '..'), resolve(here, '..', '..', '..')]
  .map((d) => join(d, 'deploy', 'etcd', 'setup.sh'))
  .find((p) => existsSync(p));

export interface EtcdRoles {
  prefix?: string;
  /** Node names: user <node> with role vipwarden-node-<node>. */
  nodes: string[];
  controllers: string[];
  readers?: string[];
  operators?: string[];
}

/** Runs deploy/etcd/setup.sh as root (the cluster's root client certificate) and turns authentication on. */
export async function setupEtcdRoles(etcd: EtcdCluster, roles: EtcdRoles): Promise<void> {
  if (!SCRIPT) throw new Error(`cannot find deploy/etcd/setup.sh above ${here}`);
  const t = etcd.tls;
  if (!t) throw new Error('setupEtcdRoles: the cluster runs without TLS (its users log in with client certificates)');
  const args = [
    SCRIPT,
    ...(roles.prefix ? ['--prefix', roles.prefix] : []),
    ...roles.nodes.flatMap((n) => ['--node', n]),
    ...roles.controllers.flatMap((n) => ['--controller', n]),
    ...(roles.readers ?? []).flatMap((n) => ['--reader', n]),
    ...(roles.operators ?? []).flatMap((n) => ['--operator', n]),
  ];
  try {
    await promisify(execFile)('bash', args, {
      timeout: 60_000,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ETCDCTL: etcd.binaries.etcdctl,
        ETCDCTL_ENDPOINTS: etcd.endpoints.join(','),
        ETCDCTL_CACERT: t.ca,
        ETCDCTL_CERT: t.cert,
        ETCDCTL_KEY: t.key,
      },
    });
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(`deploy/etcd/setup.sh failed: ${e.stderr || e.message}`);
  }
}
