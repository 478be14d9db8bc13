import type { Config } from 'jest';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Checks the responses each test file's vaults sent against the OpenAPI description.
  setupFilesAfterEnv: ['<rootDir>/test/helpers/conformance-setup.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // PGlite boots in a few seconds and s3rver/simulator tests do real I/O.
  testTimeout: 30_000,
  // Two cores here; more workers only contend.
  maxWorkers: 2,
};

export default config;
