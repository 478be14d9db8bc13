/**
 * The data at rest: the facemap bucket, the facemap KMS key and its policy, and the
 * PostgreSQL ledger. One synthesis for the whole file.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { KEY_ADMIN_ACTIONS, VAULT_ENCRYPTION_CONTEXTS } from '../lib/facemap-key';
import { onlyResource, resourcesOfType, synthesize, type Synthesized } from './synth';

type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Principal?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/** Actions that use key material (or hand it out), as opposed to managing the key. */
const CRYPTO_ACTION =
  /^kms:(\*|Encrypt|Decrypt|ReEncrypt.*|GenerateDataKey.*|CreateGrant|Sign|Verify|GenerateMac|VerifyMac|DeriveSharedSecret)$/;

let synth: Synthesized;
let bucket: Record<string, unknown>;
let bucketId: string;
let keyId: string;
let keyStatements: Statement[];
let taskRoleId: string;

beforeAll(() => {
  synth = synthesize();
  bucketId = synth.logicalId(synth.stack.bucket);
  keyId = synth.logicalId(synth.stack.facemapKey);
  taskRoleId = synth.logicalId(synth.stack.taskRole);
  bucket = resourcesOfType(synth.template, 'AWS::S3::Bucket')[bucketId]!.Properties!;
  const key = resourcesOfType(synth.template, 'AWS::KMS::Key')[keyId]!.Properties!;
  keyStatements = (key.KeyPolicy as { Statement: Statement[] }).Statement;
});

describe('facemap bucket', () => {
  test('is versioned', () => {
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
  });

  test('encrypts with SSE-KMS under the facemap key, with a bucket key', () => {
    expect(bucket.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        {
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: {
            SSEAlgorithm: 'aws:kms',
            KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] },
          },
        },
      ],
    });
  });

  test('blocks every kind of public access', () => {
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.OwnershipControls).toEqual({
      Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
    });
  });

  test('has a TLS-only bucket policy', () => {
    synth.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            Resource: [
              { 'Fn::GetAtt': [bucketId, 'Arn'] },
              { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] },
            ],
          },
        ]),
      },
    });
  });

  test('refuses writes that ask for another encryption or another key', () => {
    const policy = Object.values(resourcesOfType(synth.template, 'AWS::S3::BucketPolicy')).find(
      (p) => JSON.stringify(p.Properties?.Bucket) === JSON.stringify({ Ref: bucketId }),
    )!;
    const statements = (policy.Properties!.PolicyDocument as { Statement: Statement[] }).Statement;
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid)!;
    expect(bySid('DenyOtherEncryption')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Condition: {
        StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' },
        Null: { 's3:x-amz-server-side-encryption': 'false' },
      },
    });
    expect(bySid('DenyOtherKmsKey')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Condition: {
        StringNotEquals: {
          's3:x-amz-server-side-encryption-aws-kms-key-id': { 'Fn::GetAtt': [keyId, 'Arn'] },
        },
      },
    });
  });

  test('has no lifecycle rule and no object lock that could keep erased versions', () => {
    expect(bucket.LifecycleConfiguration).toBeUndefined();
    expect(bucket.ObjectLockEnabled).toBeUndefined();
    expect(bucket.ObjectLockConfiguration).toBeUndefined();
    expect(bucket.ReplicationConfiguration).toBeUndefined();
    expect(JSON.stringify(bucket)).not.toMatch(/Noncurrent/i);
  });

  test('logs server access to a separate TLS-only bucket', () => {
    const logging = bucket.LoggingConfiguration as { DestinationBucketName: { Ref: string } };
    const logBucketId = logging.DestinationBucketName.Ref;
    expect(logBucketId).not.toBe(bucketId);
    synth.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logBucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('and the key outlive the stack', () => {
    const all = synth.template.toJSON().Resources as Record<string, Record<string, unknown>>;
    expect(all[bucketId]).toMatchObject({
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(all[keyId]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(all[keyId]!.Properties).toMatchObject({ PendingWindowInDays: 30 });
  });
});

describe('facemap KMS key', () => {
  test('rotates automatically', () => {
    synth.template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true }),
    });
    const keys = resourcesOfType(synth.template, 'AWS::KMS::Key');
    expect(keys[keyId]!.Properties!.EnableKeyRotation).toBe(true);
  });

  test('the account administers it but cannot use it through IAM', () => {
    const admin = keyStatements.find((s) => s.Sid === 'KeyAdministration')!;
    expect(admin.Principal).toEqual({
      AWS: {
        'Fn::Join': [
          '',
          ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root'],
        ],
      },
    });
    expect(asArray(admin.Action)).toEqual(KEY_ADMIN_ACTIONS);
    // Wildcards in the admin list must not expand to a cryptographic action either.
    for (const action of asArray(admin.Action)) {
      expect(action).not.toMatch(CRYPTO_ACTION);
      expect(action).not.toMatch(/^kms:(Create|Generate|Re|En|De)\*$/);
    }
  });

  test('only the task role may use it, and only under conditions', () => {
    const crypto = keyStatements.filter((s) =>
      asArray(s.Action).some((a) => CRYPTO_ACTION.test(a)),
    );
    expect(crypto.length).toBeGreaterThan(0);
    for (const statement of crypto) {
      expect(statement.Effect).toBe('Allow');
      expect(statement.Principal).toEqual({ AWS: { 'Fn::GetAtt': [taskRoleId, 'Arn'] } });
      expect(statement.Condition).toBeDefined();
      expect(asArray(statement.Action)).not.toContain('kms:CreateGrant');
      expect(asArray(statement.Action)).not.toContain('kms:*');
    }
    const sids = crypto.map((s) => s.Sid).sort();
    expect(sids).toEqual([
      'VaultBucketSseKms',
      'VaultJumioFacemapContext',
      'VaultKeyProbeContext',
      'VaultReadinessProbeContext',
      'VaultVaultKeyContext',
    ]);
  });

  test.each([
    ['VaultJumioFacemapContext', 'jumio-facemap', ['purpose', 'enrollment', 'user', 'format']],
    ['VaultVaultKeyContext', 'vault-key', ['purpose', 'name', 'format']],
    ['VaultReadinessProbeContext', 'readiness-probe', ['purpose', 'format']],
    ['VaultKeyProbeContext', 'key-probe', ['purpose', 'name', 'format']],
  ])('%s: purpose %s with exactly the context keys %j', (sid, purpose, keys) => {
    const statement = keyStatements.find((s) => s.Sid === sid)!;
    expect(asArray(statement.Action).sort()).toEqual(
      ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'].sort(),
    );
    expect(statement.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': purpose },
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': keys },
      Null: Object.fromEntries(
        keys.filter((k) => k !== 'purpose').map((k) => [`kms:EncryptionContext:${k}`, 'false']),
      ),
    });
    // The Encryption SDK's signing-suite key is not allowed: the vault does not sign.
    expect(JSON.stringify(statement)).not.toContain('aws-crypto-public-key');
    expect(VAULT_ENCRYPTION_CONTEXTS[purpose]).toEqual(keys);
  });

  test('S3 may use it for the bucket only, on behalf of the task role', () => {
    const statement = keyStatements.find((s) => s.Sid === 'VaultBucketSseKms')!;
    expect(asArray(statement.Action).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    const arnParts = [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':s3:::facemapvault-facemaps-',
      { Ref: 'AWS::AccountId' },
      '-',
      { Ref: 'AWS::Region' },
    ];
    const bucketArn = { 'Fn::Join': ['', arnParts] };
    expect(bucket.BucketName).toEqual({
      'Fn::Join': [
        '',
        ['facemapvault-facemaps-', { Ref: 'AWS::AccountId' }, '-', { Ref: 'AWS::Region' }],
      ],
    });
    expect(statement.Condition).toEqual({
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
        'kms:CallerAccount': { Ref: 'AWS::AccountId' },
      },
      StringLike: {
        'kms:EncryptionContext:aws:s3:arn': [bucketArn, { 'Fn::Join': ['', [...arnParts, '/*']] }],
      },
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['aws:s3:arn'] },
    });
  });

  test('the vault is told to use this key by ARN, for both layers', () => {
    const task = onlyResource(synth.template, 'AWS::ECS::TaskDefinition');
    const vault = (
      task.props.ContainerDefinitions as {
        Name: string;
        Environment: { Name: string; Value: unknown }[];
      }[]
    ).find((c) => c.Name === 'vault')!;
    const env = Object.fromEntries(vault.Environment.map((e) => [e.Name, e.Value]));
    expect(env.KMS_KEY_ID).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    expect(env.S3_SSE_KMS_KEY_ID).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    expect(env.S3_BUCKET).toEqual(bucket.BucketName);
  });
});

describe('PostgreSQL ledger', () => {
  let db: { id: string; props: Record<string, unknown> };
  beforeAll(() => {
    db = onlyResource(synth.template, 'AWS::RDS::DBInstance');
  });

  test('is encrypted at rest with its own rotating KMS key', () => {
    expect(db.props.StorageEncrypted).toBe(true);
    const kmsRef = db.props.KmsKeyId as { 'Fn::GetAtt': [string, string] };
    expect(kmsRef['Fn::GetAtt'][1]).toBe('Arn');
    const dbKey = resourcesOfType(synth.template, 'AWS::KMS::Key')[kmsRef['Fn::GetAtt'][0]]!;
    expect(kmsRef['Fn::GetAtt'][0]).not.toBe(keyId);
    expect(dbKey.Properties!.EnableKeyRotation).toBe(true);
  });

  test('is Multi-AZ, private, protected from deletion and backed up', () => {
    expect(db.props.MultiAZ).toBe(true);
    expect(db.props.PubliclyAccessible).toBe(false);
    expect(db.props.DeletionProtection).toBe(true);
    expect(db.props.BackupRetentionPeriod).toBe(35);
    expect(db.props.Engine).toBe('postgres');
    const all = synth.template.toJSON().Resources as Record<string, Record<string, unknown>>;
    expect(all[db.id]!.DeletionPolicy).toBe('Snapshot');
  });

  test('takes its credentials from a generated Secrets Manager secret', () => {
    const secrets = resourcesOfType(synth.template, 'AWS::SecretsManager::Secret');
    const [secretId] = Object.entries(secrets).find(([, s]) =>
      JSON.stringify(s.Properties?.GenerateSecretString ?? {}).includes('username'),
    )!;
    const resolve = (field: string) => ({
      'Fn::Join': [
        '',
        ['{{resolve:secretsmanager:', { Ref: secretId }, `:SecretString:${field}::}}`],
      ],
    });
    expect(db.props.MasterUsername).toBe('vault');
    expect(JSON.stringify(db.props)).not.toMatch(/"MasterUserPassword":"[^{]/);
    expect(db.props.MasterUserPassword).toEqual(resolve('password'));
    synth.template.hasResourceProperties('AWS::SecretsManager::SecretTargetAttachment', {
      SecretId: { Ref: secretId },
      TargetType: 'AWS::RDS::DBInstance',
    });
  });

  test('requires TLS and lives in subnets without a route out', () => {
    synth.template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Parameters: { 'rds.force_ssl': '1' },
    });
    const group = onlyResource(synth.template, 'AWS::RDS::DBSubnetGroup');
    const subnetIds = (group.props.SubnetIds as { Ref: string }[]).map((s) => s.Ref);
    expect(subnetIds.length).toBe(2);
    for (const id of subnetIds) expect(id).toMatch(/^Vpcdata/);
    const routes = resourcesOfType(synth.template, 'AWS::EC2::Route');
    const dataTables = Object.entries(resourcesOfType(synth.template, 'AWS::EC2::RouteTable'))
      .filter(([id]) => id.startsWith('Vpcdata'))
      .map(([id]) => id);
    expect(dataTables.length).toBe(2);
    for (const route of Object.values(routes)) {
      expect(dataTables).not.toContain((route.Properties!.RouteTableId as { Ref: string }).Ref);
    }
  });

  test('admits connections from the vault tasks only', () => {
    const ingress = Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties!)
      .filter((p) => p.FromPort === 5432);
    expect(ingress).toHaveLength(1);
    expect(ingress[0]!.SourceSecurityGroupId).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^ServiceSecurityGroup/), 'GroupId'],
    });
    const dbGroups = db.props.VPCSecurityGroups as { 'Fn::GetAtt': [string, string] }[];
    expect(dbGroups).toHaveLength(1);
    expect(ingress[0]!.GroupId).toEqual(dbGroups[0]);
    const dbGroup = resourcesOfType(synth.template, 'AWS::EC2::SecurityGroup')[
      dbGroups[0]!['Fn::GetAtt'][0]
    ]!;
    expect(dbGroup.Properties!.SecurityGroupIngress).toBeUndefined();
  });
});

describe('audit digest signing key', () => {
  let props: Record<string, unknown>;
  let statements: Statement[];
  let id: string;

  beforeAll(() => {
    id = synth.logicalId(synth.stack.auditSigningKey);
    props = resourcesOfType(synth.template, 'AWS::KMS::Key')[id]!.Properties!;
    statements = (props.KeyPolicy as { Statement: Statement[] }).Statement;
  });

  test('is an HMAC key for MACs only, kept when the stack goes', () => {
    expect(props.KeySpec).toBe('HMAC_256');
    expect(props.KeyUsage).toBe('GENERATE_VERIFY_MAC');
    const key = resourcesOfType(synth.template, 'AWS::KMS::Key')[id] as { DeletionPolicy?: string };
    expect(key.DeletionPolicy).toBe('Retain');
  });

  test('lets the task role generate and verify MACs, and nobody else use it', () => {
    const users = statements.filter((s) => asArray(s.Action).some((a) => CRYPTO_ACTION.test(a)));
    expect(users).toHaveLength(1);
    expect(asArray(users[0]!.Action).sort()).toEqual(['kms:GenerateMac', 'kms:VerifyMac']);
    expect(users[0]!.Principal).toEqual({ AWS: { 'Fn::GetAtt': [taskRoleId, 'Arn'] } });
  });

  test('is what the vault signs its digests with', () => {
    const task = onlyResource(synth.template, 'AWS::ECS::TaskDefinition').props;
    const containers = task.ContainerDefinitions as Array<{
      Name: string;
      Environment?: { Name: string; Value: unknown }[];
    }>;
    const vault = containers.find((c) => c.Name === 'vault')!;
    expect(vault.Environment).toEqual(
      expect.arrayContaining([
        { Name: 'AUDIT_SIGNING_KMS_KEY_ID', Value: { 'Fn::GetAtt': [id, 'Arn'] } },
      ]),
    );
  });
});
