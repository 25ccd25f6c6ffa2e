// Test harness entry for the netns testbed (bridge, namespaces, nginx, probe, sampler); see hack/testbed.
export * from '../../hack/testbed/index.js';
