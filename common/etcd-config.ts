// The `etcd` section of agent.yaml and controller.yaml: endpoints, key prefix and the connection (TLS, auth) fields
// of common/etcd.ts, checked together (https endpoints with TLS, one scheme for all).
import { z } from 'zod';
import { etcdConnectionFields, etcdConnectionIssue } from './etcd.js';
import { DEFAULT_PREFIX } from './keyspace.js';

export const EtcdConfigSchema = z
  .object({
    endpoints: z.array(z.string().url()).min(1),
    prefix: z.string().startsWith('/').default(DEFAULT_PREFIX),
    ...etcdConnectionFields,
  })
  .strict()
  .superRefine((e, ctx) => {
    const issue = etcdConnectionIssue(e);
    if (issue) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: issue });
  });
