// Test harness entry for throw-away etcd clusters; the implementation (and its list of exports) lives in hack/testbed.
export * from '../../hack/testbed/etcd.js';
