// The integration and e2e tiers talk to real servers (etcd, kube-apiserver, kubectl, agents in namespaces): on a
// loaded 2-core machine one kubectl call can take longer than jest's 5 s default, which failed a CI run that had done
// nothing wrong. A file that needs more sets its own with jest.setTimeout; this bound only catches a hang.
import { jest } from '@jest/globals';

jest.setTimeout(120_000);
