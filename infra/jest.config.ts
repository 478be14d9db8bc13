import type { Config } from 'jest';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Type checking is `tsc --noEmit` in the test script; transpiling alone keeps each file fast.
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Each file synthesizes the app once; on a busy two-core machine that can take a while.
  testTimeout: 120_000,
  maxWorkers: 2,
};

export default config;
