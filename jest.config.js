// Three tiers, one runner. Unit tests sit next to the code; integration and e2e live under test/.
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } }],
};
const common = {
  transform,
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/.cache/'],
};
// Real servers: a generous per-test bound that only catches a hang (test/harness/timeouts.ts).
const slow = { setupFilesAfterEnv: ['<rootDir>/test/harness/timeouts.ts'] };
export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{common,crds,controller,node-agent,cli,hack}/**/*.test.ts'],
    },
    { ...common, ...slow, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...common, ...slow, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
