import type { Config } from 'jest';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // npm run test:resilience (jest.resilience.config.ts): minutes of real processes.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/resilience/'],
  // Checks the responses each test file's vaults sent against the OpenAPI description.
  setupFilesAfterEnv: ['<rootDir>/test/helpers/conformance-setup.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Builds dist/ when stale: process tests run the compiled vault and CLI.
  globalSetup: '<rootDir>/test/global-setup.ts',
  // PGlite boots in a few seconds and s3rver/simulator tests do real I/O; a whole vault
  // starting on a 2-core machine busy with another heavy process can take tens of seconds
  // (hooks share this bound; tests do not set a shorter one of their own, CI at load 14
  // ran past 30 and 60 s ones). Timing is never asserted: this only bounds a hang.
  testTimeout: 120_000,
  // Two cores here; more workers only contend.
  maxWorkers: 2,
};

export default config;
