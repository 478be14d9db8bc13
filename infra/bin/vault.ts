#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { createVaultStack } from '../lib/app';
import { SettingsError } from '../lib/config';

const app = new App();
try {
  createVaultStack(app);
} catch (error) {
  if (error instanceof SettingsError) {
    // eslint-disable-next-line no-console
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}
