/**
 * The ECS service and its task: size, placement, configuration, secrets, logs and the
 * permissions of its roles. One synthesis for the whole file (image built from the repo).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { App } from 'aws-cdk-lib';
import { resourcesOfType, onlyResource, synthesize, type Synthesized } from './synth';

type Props = Record<string, unknown>;
type Container = {
  Name: string;
  Image: unknown;
  Essential?: boolean;
  Environment?: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: unknown }[];
  LogConfiguration?: { LogDriver: string; Options: Props };
  DependsOn?: { ContainerName: string; Condition: string }[];
  MountPoints?: Props[];
  Command?: string[];
};
type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource: unknown };

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

let synth: Synthesized;
let task: Props;
let containers: Container[];
let vault: Container;
let env: Record<string, unknown>;

const secretFields = [
  'PGUSER',
  'PGPASSWORD',
  'JUMIO_API_TOKEN',
  'JUMIO_API_SECRET',
  'JUMIO_ADMIN_API_TOKEN',
  'JUMIO_ADMIN_API_SECRET',
  'VAULT_API_KEYS',
  'VAULT_NOTIFY_SECRET',
];

/** The policy documents attached to a role, by the role's logical id. */
function policiesOf(roleId: string): Statement[] {
  return Object.values(resourcesOfType(synth.template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties!.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => (p.Properties!.PolicyDocument as { Statement: Statement[] }).Statement);
}

beforeAll(() => {
  synth = synthesize();
  task = onlyResource(synth.template, 'AWS::ECS::TaskDefinition').props;
  containers = task.ContainerDefinitions as Container[];
  vault = containers.find((c) => c.Name === 'vault')!;
  env = Object.fromEntries((vault.Environment ?? []).map((e) => [e.Name, e.Value]));
});

describe('service', () => {
  test('runs at least two Fargate tasks, replaced without dropping below that', () => {
    const service = onlyResource(synth.template, 'AWS::ECS::Service').props;
    expect(service.LaunchType).toBe('FARGATE');
    expect(service.DesiredCount as number).toBeGreaterThanOrEqual(2);
    expect(service.DeploymentConfiguration).toMatchObject({
      MinimumHealthyPercent: 100,
      MaximumPercent: 200,
      DeploymentCircuitBreaker: { Enable: true, Rollback: true },
    });
    expect(service.EnableExecuteCommand).toBe(false);
    expect((service.LoadBalancers as Props[]).map((lb) => lb.ContainerPort)).toEqual([8080, 8080]);
  });

  test('builds the vault image from the repository Dockerfile (no Docker needed to synthesize)', () => {
    // What `cdk deploy` would build: the asset manifest of the synthesized assembly.
    const outdir = (synth.stack.node.root as App).outdir;
    const manifest = JSON.parse(
      fs.readFileSync(path.join(outdir, `${synth.stack.artifactId}.assets.json`), 'utf8'),
    ) as { dockerImages: Record<string, { source: { directory: string; platform?: string } }> };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]!.source.platform).toBe('linux/amd64');
    const staged = path.join(outdir, images[0]!.source.directory);
    expect(fs.readFileSync(path.join(staged, 'Dockerfile'), 'utf8')).toBe(
      fs.readFileSync(path.join(__dirname, '..', '..', 'Dockerfile'), 'utf8'),
    );
    expect(fs.existsSync(path.join(staged, 'src', 'main.ts'))).toBe(true);
    // The build context leaves out the CDK app and anything bulky or local.
    for (const excluded of ['infra', 'node_modules', '.git', 'test']) {
      expect(fs.existsSync(path.join(staged, excluded))).toBe(false);
    }
    expect(JSON.stringify(vault.Image)).toContain('container-assets');
  });
});

describe('vault container', () => {
  test('runs in production mode with the S3, KMS and Jumio settings', () => {
    expect(env).toMatchObject({
      NODE_ENV: 'production',
      PORT: '8080',
      BLOB_STORE: 's3',
      AWS_REGION: { Ref: 'AWS::Region' },
      JUMIO_REGION: 'US',
      JUMIO_USER_AGENT: 'Test Bank Vault/2.0.0',
      METRICS_PORT: '9464',
      VAULT_PUBLIC_URL: 'https://vault.bank.test',
    });
    for (const name of ['S3_BUCKET', 'KMS_KEY_ID', 'S3_SSE_KMS_KEY_ID', 'TRUST_PROXY']) {
      expect(env[name]).toBeDefined();
    }
  });

  test('gets every credential as an ECS secret, never as plain environment', () => {
    const secrets = Object.fromEntries((vault.Secrets ?? []).map((s) => [s.Name, s.ValueFrom]));
    expect(Object.keys(secrets).sort()).toEqual([...secretFields].sort());
    for (const name of secretFields) expect(env[name]).toBeUndefined();
    // Secrets, or the database secret's attachment (its ARN once attached to the instance).
    const secretIds = [
      ...Object.keys(resourcesOfType(synth.template, 'AWS::SecretsManager::Secret')),
      ...Object.keys(
        resourcesOfType(synth.template, 'AWS::SecretsManager::SecretTargetAttachment'),
      ),
    ];
    for (const [name, valueFrom] of Object.entries(secrets)) {
      // A Secrets Manager ARN (with a JSON field for the structured secrets).
      const text = JSON.stringify(valueFrom);
      expect([name, secretIds.some((id) => text.includes(id))]).toEqual([name, true]);
    }
    expect(JSON.stringify(secrets.PGPASSWORD)).toContain(':password::');
    expect(JSON.stringify(secrets.JUMIO_API_SECRET)).toContain(':secret::');
    // No environment value looks like a credential.
    expect(Object.keys(env).filter((k) => /SECRET|PASSWORD|TOKEN|API_KEYS/.test(k))).toEqual([]);
  });

  test('reaches PostgreSQL over verified TLS with a credential-free DATABASE_URL', () => {
    const url = JSON.stringify(env.DATABASE_URL);
    expect(url).toContain('postgres://');
    expect(url).toContain('/vault?sslmode=verify-full&sslrootcert=/var/lib/vault/rds-ca.pem');
    expect(url).not.toContain('@'); // user and password come from PGUSER/PGPASSWORD
    const rdsCa = containers.find((c) => c.Name === 'rds-ca')!;
    expect(rdsCa.Essential).toBe(false);
    expect(vault.DependsOn).toEqual([{ ContainerName: 'rds-ca', Condition: 'SUCCESS' }]);
    expect(rdsCa.MountPoints).toEqual(vault.MountPoints);
    expect(JSON.stringify(rdsCa)).toContain('truststore.pki.rds.amazonaws.com');
  });

  test('every container logs through awslogs to a group kept for a year', () => {
    const groups = resourcesOfType(synth.template, 'AWS::Logs::LogGroup');
    for (const container of containers) {
      expect(container.LogConfiguration?.LogDriver).toBe('awslogs');
      const ref = container.LogConfiguration!.Options['awslogs-group'] as { Ref: string };
      expect(groups[ref.Ref]!.Properties!.RetentionInDays).toBe(365);
    }
  });
});

describe('task role (least privilege)', () => {
  let taskRoleId: string;
  let statements: Statement[];
  beforeAll(() => {
    taskRoleId = synth.logicalId(synth.stack.taskRole);
    statements = policiesOf(taskRoleId);
  });

  test('has no wildcard action and no wildcard resource', () => {
    expect(statements.length).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(statement.Effect).toBe('Allow');
      for (const action of asArray(statement.Action)) expect(action).not.toContain('*');
      for (const resource of asArray(statement.Resource)) expect(resource).not.toBe('*');
    }
    const role = resourcesOfType(synth.template, 'AWS::IAM::Role')[taskRoleId]!.Properties!;
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(role.Policies).toBeUndefined();
  });

  test('may touch the facemap objects (all versions) and list the bucket, nothing more in S3', () => {
    const s3 = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('s3:')));
    const actions = s3.flatMap((s) => asArray(s.Action)).sort();
    expect(actions).toEqual(
      [
        's3:DeleteObject',
        's3:DeleteObjectVersion',
        's3:GetObject',
        's3:GetObjectVersion',
        's3:ListBucket',
        's3:ListBucketVersions',
        's3:PutObject',
      ].sort(),
    );
    for (const statement of s3) {
      expect(JSON.stringify(statement.Resource)).toContain(':s3:::facemapvault-facemaps-');
    }
  });

  test('uses KMS only through the key policy (no IAM grant of KMS actions)', () => {
    const kms = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('kms:')));
    expect(kms).toEqual([]);
  });

  test('writes only to the metrics log group (for the ADOT sidecar)', () => {
    const logs = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('logs:')));
    expect(logs).toHaveLength(1);
    expect((logs[0]!.Resource as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]).toMatch(
      /^MetricsLogs/,
    );
    const services = new Set(
      statements.flatMap((s) => asArray(s.Action).map((a) => a.split(':')[0])),
    );
    expect([...services].sort()).toEqual(['logs', 's3']);
  });
});

describe('execution role', () => {
  test("reads only the task's secrets and pulls the image; '*' only where AWS requires it", () => {
    const executionRoleId = (task.ExecutionRoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
    const statements = policiesOf(executionRoleId);
    for (const statement of statements) {
      if (asArray(statement.Resource).includes('*')) {
        // GetAuthorizationToken has no resource-level permissions.
        expect(asArray(statement.Action)).toEqual(['ecr:GetAuthorizationToken']);
      }
      for (const action of asArray(statement.Action)) expect(action).not.toMatch(/:\*$/);
    }
    const secretReads = statements.filter((s) =>
      asArray(s.Action).includes('secretsmanager:GetSecretValue'),
    );
    expect(secretReads).toHaveLength(4); // database, Jumio, API keys, notification secret
  });
});
