// Test harness entry for throw-away etcd clusters; the implementation lives in hack/testbed.
export {
  startEtcd,
  freePorts,
  type EtcdCluster,
  type EtcdMember,
  type EtcdClientConfig,
  type StartEtcdOptions,
} from '../../hack/testbed/etcd.js';
