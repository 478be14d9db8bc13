import { Aws } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
// The vault's own list, so the policy cannot drift from what the vault sends to KMS.
import { ENCRYPTION_CONTEXT_KEYS } from '../../src/core/encryption-contexts';

/**
 * The encryption contexts the vault uses with its KMS key, by purpose, with the keys each
 * carries (src/core/encryption-contexts.ts). KMS logs the context
 * in CloudTrail, so it names no person: `user` is a keyed hash.
 *
 * The AWS Encryption SDK adds `aws-crypto-public-key` to the context only for signing
 * algorithm suites; the vault encrypts with a committing suite WITHOUT signing, so that
 * key never reaches KMS and is deliberately absent from the allowed sets below.
 */
export const VAULT_ENCRYPTION_CONTEXTS: Readonly<Record<string, readonly string[]>> =
  ENCRYPTION_CONTEXT_KEYS;

/** What the vault asks of KMS through the Encryption SDK's KMS keyring. */
export const VAULT_KMS_ACTIONS = ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey'];

/**
 * Managing the key, not using it: the account (and so IAM) can change the policy, rotate,
 * disable or schedule deletion, but no IAM policy can grant Decrypt or GenerateDataKey on
 * it. Using the key takes a statement in this key policy, where reviewers look.
 */
export const KEY_ADMIN_ACTIONS = [
  'kms:CreateAlias', // not CreateGrant: a grant would bypass the context conditions below
  'kms:Describe*',
  'kms:Enable*',
  'kms:List*',
  'kms:Put*',
  'kms:Update*',
  'kms:Revoke*',
  'kms:Disable*',
  'kms:Get*',
  'kms:Delete*',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
  'kms:RotateKeyOnDemand',
];

/**
 * One statement per purpose: the purpose value is pinned, every other key of that context
 * must be present (Null false), and no key outside the set may appear (ForAllValues).
 * ForAllValues alone would also match a request with NO context (an empty set is a subset
 * of anything); the purpose condition is what refuses those.
 */
export function vaultContextStatements(
  principal: iam.IPrincipal | undefined,
  actions: string[],
  resources: string[],
): iam.PolicyStatement[] {
  return Object.entries(VAULT_ENCRYPTION_CONTEXTS).map(([purpose, keys]) => {
    const required = Object.fromEntries(
      keys.filter((k) => k !== 'purpose').map((k) => [`kms:EncryptionContext:${k}`, 'false']),
    );
    return new iam.PolicyStatement({
      sid: `Vault${purpose
        .split('-')
        .map((w) => w[0]!.toUpperCase() + w.slice(1))
        .join('')}Context`,
      principals: principal ? [principal] : undefined,
      actions,
      resources,
      conditions: {
        StringEquals: { 'kms:EncryptionContext:purpose': purpose },
        'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': [...keys] },
        Null: required,
      },
    });
  });
}

export interface FacemapKeyPolicyProps {
  taskRole: iam.IRole;
  /** The facemap bucket's ARN; must not depend on the bucket resource (the bucket uses this key). */
  bucketArn: string;
}

/**
 * The facemap key's policy: administration for the account, and use by the vault's task
 * role only (a) with the vault's own encryption contexts, or (b) through S3, for the
 * bucket's SSE-KMS layer, where S3 passes the bucket ARN as context (bucket key enabled).
 */
export function facemapKeyPolicy({
  taskRole,
  bucketArn,
}: FacemapKeyPolicyProps): iam.PolicyDocument {
  return new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        sid: 'KeyAdministration',
        principals: [new iam.AccountRootPrincipal()],
        actions: KEY_ADMIN_ACTIONS,
        resources: ['*'],
      }),
      ...vaultContextStatements(taskRole, VAULT_KMS_ACTIONS, ['*']),
      new iam.PolicyStatement({
        sid: 'VaultBucketSseKms',
        principals: [taskRole],
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: ['*'],
        conditions: {
          StringEquals: {
            'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com`,
            'kms:CallerAccount': Aws.ACCOUNT_ID,
          },
          // The bucket ARN with a bucket key; an object ARN if a writer ever turned it off.
          StringLike: { 'kms:EncryptionContext:aws:s3:arn': [bucketArn, `${bucketArn}/*`] },
          'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['aws:s3:arn'] },
        },
      }),
    ],
  });
}
