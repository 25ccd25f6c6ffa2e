// Moved to hack/testbed/cluster.ts (hack/ imports it, and imports point from test/ to hack/, never back).
export * from '../../hack/testbed/cluster.js';
