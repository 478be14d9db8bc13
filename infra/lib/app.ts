import type { App } from 'aws-cdk-lib';
import { readSettings } from './config';
import { VaultStack } from './vault-stack';

/** The one stack of the app, from the app's context (bin/vault.ts and the tests). */
export function createVaultStack(app: App): VaultStack {
  const settings = readSettings((key) => app.node.tryGetContext(key));
  return new VaultStack(app, settings.stackName, {
    settings,
    description: 'Facemap vault: Jumio facemaps, envelope-encrypted, on the customer premises',
    // Without account/region context the template is environment-agnostic.
    env:
      settings.account && settings.region
        ? { account: settings.account, region: settings.region }
        : undefined,
  });
}
