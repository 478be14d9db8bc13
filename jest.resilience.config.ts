import type { Config } from 'jest';

/**
 * `npm run test:resilience`: the fault scenarios over real processes (test/resilience),
 * kept out of `npm test` so that it stays fast. One file at a time: each scenario loads
 * the machine on its own, and its figures are only meaningful alone.
 */
const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/resilience'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/test/global-setup.ts',
  // Bounds a hang only; every scenario also bounds its own waits.
  testTimeout: 420_000,
  maxWorkers: 1,
};

export default config;
