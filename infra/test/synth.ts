import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { createVaultStack } from '../lib/app';
import type { VaultStack } from '../lib/vault-stack';

/** cdk.json's context (feature flags), so that tests synthesize what `cdk synth` does. */
const CDK_JSON_CONTEXT = (
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

/** A deployable-looking context (no sample values), US region. */
export const TEST_CONTEXT: Readonly<Record<string, string>> = {
  jumioRegion: 'US',
  certificateArn:
    'arn:aws:acm:eu-central-1:123456789012:certificate/11111111-2222-3333-4444-555555555555',
  vaultPublicUrl: 'https://vault.bank.test',
  jumioUserAgent: 'Test Bank Vault/2.0.0',
};

/** Skips staging the Docker build context: for tests that do not look at the image. */
export const ECR_IMAGE_CONTEXT: Readonly<Record<string, string>> = {
  imageRepository: 'facemap-vault',
  imageTag: 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
};

export interface Synthesized {
  stack: VaultStack;
  template: Template;
  /** The logical id CloudFormation knows a construct's main resource by. */
  logicalId: (construct: { node: { defaultChild?: unknown } }) => string;
}

/** Synthesis output directories of this test file, removed after it (else left in /tmp). */
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export function synthesize(context: Record<string, unknown> = {}): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'vault-cdk-test-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: { ...CDK_JSON_CONTEXT, ...TEST_CONTEXT, ...context } });
  const stack = createVaultStack(app);
  const template = Template.fromStack(stack);
  const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(construct.node.defaultChild as Parameters<typeof stack.getLogicalId>[0]);
  return { stack, template, logicalId };
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** Every resource of a type, by logical id. */
export function resourcesOfType(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

/** The single resource of a type; fails when there are none or several. */
export function onlyResource(
  template: Template,
  type: string,
): { id: string; props: Record<string, unknown> } {
  const found = Object.entries(resourcesOfType(template, type));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  const [id, resource] = found[0]!;
  return { id, props: resource.Properties ?? {} };
}
