import * as path from 'node:path';
import { Annotations, Aws, CfnOutput, Duration, RemovalPolicy, Stack, Tags } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import type { VaultSettings } from './config';
import { facemapKeyPolicy, KEY_ADMIN_ACTIONS, vaultContextStatements } from './facemap-key';
import { METRICS_PORT, VaultAlarms, adotConfig } from './observability';

/** The vault's HTTP port (PORT): callbacks, /v1, /healthz and /readyz. */
export const VAULT_PORT = 8080;
/** The image's data directory (a VOLUME owned by the `node` user in the Dockerfile). */
export const DATA_DIR = '/var/lib/vault';
/** Where the init container leaves the RDS CA bundle that DATABASE_URL points to. */
export const RDS_CA_FILE = `${DATA_DIR}/rds-ca.pem`;
export const DATABASE_NAME = 'vault';
/** The repository root: its Dockerfile builds the vault image. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Paths the internal load balancer forwards; everything else answers 404 there. */
export const INTERNAL_PATHS = ['/v1', '/v1/*', '/openapi.json', '/healthz', '/readyz'];
/** The one path the public load balancer forwards (POST only). */
export const WEBHOOK_PATH = '/webhooks/jumio';

/**
 * Generated database passwords avoid every character that would need escaping in a URL
 * or a shell: letters and digits only (30 of them: about 178 bits).
 */
const PASSWORD_EXCLUDE = ' !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/**
 * Downloads the regional RDS CA bundle into the shared volume, so the vault verifies the
 * database's certificate (sslmode=verify-full) without a change to its image. Bounded in
 * time and size; a failure stops the task before the vault starts (ECS retries).
 */
const RDS_CA_SCRIPT = [
  "const fs = require('node:fs');",
  'const url = process.env.RDS_CA_BUNDLE_URL;',
  "fetch(url, { signal: AbortSignal.timeout(15000), redirect: 'error' })",
  '  .then(async (res) => {',
  "    if (!res.ok) throw new Error('HTTP ' + res.status);",
  '    const pem = await res.text();',
  "    if (pem.length > 1000000 || !pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('not a PEM bundle');",
  '    fs.writeFileSync(process.env.RDS_CA_FILE, pem, { mode: 0o644 });',
  "    console.log('rds-ca: wrote ' + pem.length + ' bytes from ' + url);",
  '  })',
  "  .catch((err) => { console.error('rds-ca: ' + err.message); process.exit(1); });",
].join('\n');

/** The container health check the Dockerfile declares (ECS ignores HEALTHCHECK). */
const HEALTH_CHECK_SCRIPT = `fetch('http://127.0.0.1:${VAULT_PORT}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;

export interface VaultStackProps extends StackProps {
  settings: VaultSettings;
}

/**
 * The facemap vault on AWS: two or more Fargate tasks in private subnets behind a public
 * load balancer that only Jumio's callback addresses reach (POST /webhooks/jumio only)
 * and an internal one for the /v1 API; RDS PostgreSQL as the ledger; an S3 bucket and a
 * KMS key for the facemaps; secrets in Secrets Manager; logs, metrics and alarms.
 */
export class VaultStack extends Stack {
  readonly taskRole: iam.Role;
  readonly facemapKey: kms.Key;
  readonly auditSigningKey: kms.Key;
  readonly bucket: s3.Bucket;
  readonly database: rds.DatabaseInstance;
  readonly service: ecs.FargateService;
  readonly alarms: VaultAlarms;

  constructor(scope: Construct, id: string, props: VaultStackProps) {
    super(scope, id, props);
    const s = props.settings;
    Tags.of(this).add('application', 'facemap-vault');
    if (s.sample) {
      Annotations.of(this).addWarning(
        'Synthesized with sample context values (-c sample=true): review only, do not deploy.',
      );
    }

    // ---- Network: public subnets hold the public load balancer and the NAT gateways,
    // app subnets the tasks and the internal load balancer, data subnets (no route out)
    // the database.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(s.vpcCidr),
      maxAzs: 2,
      natGateways: s.natGateways,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // Blob traffic stays on the AWS network (and off the NAT bill).
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    const appSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    const publicAlbSg = new ec2.SecurityGroup(this, 'PublicAlbSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: `Jumio callbacks: HTTPS from the Jumio ${s.jumioRegion} callback addresses only`,
    });
    for (const cidr of s.jumioCallbackCidrs) {
      publicAlbSg.addIngressRule(
        ec2.Peer.ipv4(cidr),
        ec2.Port.tcp(443),
        `Jumio ${s.jumioRegion} callbacks`,
      );
    }
    const internalAlbSg = new ec2.SecurityGroup(this, 'InternalAlbSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: 'Vault /v1 API: HTTPS from internal callers only',
    });
    for (const cidr of s.apiAllowedCidrs ?? [s.vpcCidr]) {
      internalAlbSg.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'internal API callers');
    }
    const serviceSg = new ec2.SecurityGroup(this, 'ServiceSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: 'Vault tasks: 8080 from the two load balancers; metrics port never opened',
    });
    // Out: Jumio, AWS APIs (KMS, Secrets Manager, ECR, logs) and the RDS CA truststore.
    serviceSg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to Jumio and AWS APIs');
    const databaseSg = new ec2.SecurityGroup(this, 'DatabaseSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: 'Vault ledger: PostgreSQL from the vault tasks only',
    });
    databaseSg.addIngressRule(serviceSg, ec2.Port.tcp(5432), 'vault tasks');
    serviceSg.addEgressRule(databaseSg, ec2.Port.tcp(5432), 'ledger');

    // ---- Task role first: the key policy names it.
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Facemap vault tasks: the facemap bucket and, by key policy, the facemap key',
    });

    // ---- Facemap key and bucket. The bucket's name is fixed from pseudo parameters so
    // that the key policy can name the bucket without depending on it (the bucket
    // depends on the key).
    const bucketName = `${s.stackName.toLowerCase()}-facemaps-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
    const bucketArn = `arn:${Aws.PARTITION}:s3:::${bucketName}`;
    this.facemapKey = new kms.Key(this, 'FacemapKey', {
      description: 'Facemap vault: envelope encryption of facemaps and SSE-KMS of their bucket',
      alias: `alias/${s.stackName.toLowerCase()}-facemaps`,
      enableKeyRotation: true,
      policy: facemapKeyPolicy({ taskRole: this.taskRole, bucketArn }),
      // A deleted key makes every stored facemap unreadable: never with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });

    // ---- The audit digests' signing key (HMAC), kept outside the database: whoever controls
    // the ledger cannot re-sign a rewritten trail. Used by the task role for MACs only.
    this.auditSigningKey = new kms.Key(this, 'AuditSigningKey', {
      description: 'Facemap vault: signs the audit trail digests (HMAC-SHA256)',
      alias: `alias/${s.stackName.toLowerCase()}-audit-digests`,
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'KeyAdministration',
            principals: [new iam.AccountRootPrincipal()],
            actions: KEY_ADMIN_ACTIONS,
            resources: ['*'],
          }),
          new iam.PolicyStatement({
            sid: 'VaultAuditDigests',
            principals: [this.taskRole],
            actions: ['kms:GenerateMac', 'kms:VerifyMac'],
            resources: ['*'],
          }),
        ],
      }),
      // Old digests are verified with it: never deleted with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });

    const accessLogs = new s3.Bucket(this, 'FacemapAccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED, // the only encryption log delivery supports
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(s.logRetentionDays) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucket = new s3.Bucket(this, 'FacemapBucket', {
      bucketName,
      versioned: true,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.facemapKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'facemaps/',
      // Deliberately no lifecycle rules and no object lock: erasure deletes every version
      // itself, and nothing may keep (or forbid deleting) an erased facemap's versions.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Every object is under the vault's key: a write that asks for another encryption or
    // another key is refused (one without either header gets the default: this key).
    const denyPutWhen = (sid: string, header: string, expected: string) =>
      this.bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['s3:PutObject'],
          resources: [`${bucketArn}/*`],
          conditions: {
            StringNotEquals: { [header]: expected },
            Null: { [header]: 'false' },
          },
        }),
      );
    denyPutWhen('DenyOtherEncryption', 's3:x-amz-server-side-encryption', 'aws:kms');
    denyPutWhen(
      'DenyOtherKmsKey',
      's3:x-amz-server-side-encryption-aws-kms-key-id',
      this.facemapKey.keyArn,
    );

    // Least privilege: objects and their versions (erasure removes every version), the
    // listings the blob store uses (HeadBucket needs ListBucket), nothing else in S3.
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'FacemapObjects',
        actions: [
          's3:GetObject',
          's3:GetObjectVersion',
          's3:PutObject',
          's3:DeleteObject',
          's3:DeleteObjectVersion',
        ],
        resources: [`${bucketArn}/*`],
      }),
    );
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'FacemapListing',
        actions: ['s3:ListBucket', 's3:ListBucketVersions'],
        resources: [bucketArn],
      }),
    );
    // Keys facemaps were encrypted under before a key change: decrypt only, same contexts
    // (those keys' own policies must allow this role too).
    if (s.previousKmsKeyArns.length > 0) {
      for (const statement of vaultContextStatements(
        undefined,
        ['kms:Decrypt'],
        s.previousKmsKeyArns,
      )) {
        statement.sid = `Previous${statement.sid}`;
        this.taskRole.addToPrincipalPolicy(statement);
      }
    }

    // ---- Ledger: PostgreSQL, Multi-AZ, encrypted, in subnets without a route out.
    const databaseKey = new kms.Key(this, 'DatabaseKey', {
      description: 'Facemap vault: RDS storage encryption of the ledger',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.database = new rds.DatabaseInstance(this, 'Database', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      instanceType: new ec2.InstanceType(s.dbInstanceType),
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [databaseSg],
      multiAz: true,
      publiclyAccessible: false,
      storageEncrypted: true,
      storageEncryptionKey: databaseKey,
      storageType: rds.StorageType.GP3,
      allocatedStorage: s.dbAllocatedStorageGiB,
      maxAllocatedStorage: s.dbAllocatedStorageGiB * 5,
      credentials: rds.Credentials.fromGeneratedSecret('vault', {
        excludeCharacters: PASSWORD_EXCLUDE,
      }),
      databaseName: DATABASE_NAME,
      parameters: { 'rds.force_ssl': '1' },
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      backupRetention: Duration.days(s.dbBackupRetentionDays),
      copyTagsToSnapshot: true,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.SNAPSHOT,
      autoMinorVersionUpgrade: true,
    });
    const databaseSecret = this.database.secret!;

    // ---- Secrets the operator fills in (see README): created here so that they are
    // owned, tagged and retained, with placeholder values that fail fast.
    const jumioSecret = new secretsmanager.Secret(this, 'JumioCredentials', {
      description:
        'Facemap vault: Jumio API credentials, JSON {"token","secret","adminToken","adminSecret"}',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const apiKeysSecret = new secretsmanager.Secret(this, 'ApiKeys', {
      description: 'Facemap vault: VAULT_API_KEYS (name:role:sha256 entries; hashes, not tokens)',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const notifySecret = new secretsmanager.Secret(this, 'NotifySecret', {
      description: 'Facemap vault: VAULT_NOTIFY_SECRET, signs outgoing notifications',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // ---- Logs and the service.
    const serviceLogs = new logs.LogGroup(this, 'ServiceLogs', {
      retention: s.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // EMF events only feed CloudWatch metrics, which outlive them: a month is enough.
    const metricsLogs = new logs.LogGroup(this, 'MetricsLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The ADOT sidecar exports with the task's credentials: this group only.
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'MetricsExport',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [metricsLogs.logGroupArn],
      }),
    );

    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: s.taskCpu,
      memoryLimitMiB: s.taskMemoryMiB,
      taskRole: this.taskRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      volumes: [{ name: 'vault-data' }],
    });
    // Building the asset needs Docker only at deploy (cdk deploy builds and pushes it);
    // synthesis only copies the build context, filtered by .dockerignore.
    const image = s.image
      ? ecs.ContainerImage.fromEcrRepository(
          ecr.Repository.fromRepositoryName(this, 'ImageRepository', s.image.repository),
          s.image.tag,
        )
      : ecs.ContainerImage.fromAsset(REPO_ROOT, {
          platform: Platform.LINUX_AMD64,
          exclude: ['infra', '.git', 'node_modules'],
        });

    const rdsCa = taskDefinition.addContainer('rds-ca', {
      image,
      essential: false,
      command: ['node', '-e', RDS_CA_SCRIPT],
      environment: {
        RDS_CA_BUNDLE_URL: `https://truststore.pki.rds.amazonaws.com/${Aws.REGION}/${Aws.REGION}-bundle.pem`,
        RDS_CA_FILE,
      },
      readonlyRootFilesystem: true,
      logging: ecs.LogDrivers.awsLogs({ logGroup: serviceLogs, streamPrefix: 'rds-ca' }),
    });
    rdsCa.addMountPoints({ sourceVolume: 'vault-data', containerPath: DATA_DIR, readOnly: false });

    // Whoever forwards to the vault: the load balancers' subnets (X-Forwarded-For is
    // believed only from there, so req.ip is the caller the balancer saw).
    const trustedProxies = [...vpc.publicSubnets, ...vpc.privateSubnets].map(
      (subnet) => subnet.ipv4CidrBlock,
    );
    const databaseUrl =
      `postgres://${this.database.dbInstanceEndpointAddress}:${this.database.dbInstanceEndpointPort}` +
      `/${DATABASE_NAME}?sslmode=verify-full&sslrootcert=${RDS_CA_FILE}`;
    const environment: Record<string, string> = {
      NODE_ENV: 'production',
      PORT: String(VAULT_PORT),
      LOG_LEVEL: 'info',
      // No credentials in the URL: node-postgres takes the user and password from
      // PGUSER/PGPASSWORD (ECS secrets below) when the URL has none.
      DATABASE_URL: databaseUrl,
      BLOB_STORE: 's3',
      S3_BUCKET: bucketName,
      AWS_REGION: Aws.REGION,
      KMS_KEY_ID: this.facemapKey.keyArn,
      S3_SSE_KMS_KEY_ID: this.facemapKey.keyArn,
      JUMIO_REGION: s.jumioRegion,
      JUMIO_USER_AGENT: s.jumioUserAgent,
      METRICS_PORT: String(METRICS_PORT),
      VAULT_PUBLIC_URL: s.vaultPublicUrl,
      TRUST_PROXY: trustedProxies.join(','),
      AUDIT_SIGNING_KMS_KEY_ID: this.auditSigningKey.keyArn,
    };
    if (s.notifyAllowedOrigins.length > 0) {
      environment.VAULT_NOTIFY_ALLOWED_ORIGINS = s.notifyAllowedOrigins.join(',');
    }
    if (s.jumioCallbackCidrsOverridden) {
      environment.JUMIO_CALLBACK_ALLOWED_CIDRS = s.jumioCallbackCidrs.join(',');
    }
    if (s.previousKmsKeyArns.length > 0) {
      environment.KMS_PREVIOUS_KEY_IDS = s.previousKmsKeyArns.join(',');
    }
    const vault = taskDefinition.addContainer('vault', {
      image,
      essential: true,
      // Only the API port: the metrics listener is reached over localhost by the sidecar.
      portMappings: [{ containerPort: VAULT_PORT, name: 'http' }],
      environment,
      secrets: {
        PGUSER: ecs.Secret.fromSecretsManager(databaseSecret, 'username'),
        PGPASSWORD: ecs.Secret.fromSecretsManager(databaseSecret, 'password'),
        JUMIO_API_TOKEN: ecs.Secret.fromSecretsManager(jumioSecret, 'token'),
        JUMIO_API_SECRET: ecs.Secret.fromSecretsManager(jumioSecret, 'secret'),
        JUMIO_ADMIN_API_TOKEN: ecs.Secret.fromSecretsManager(jumioSecret, 'adminToken'),
        JUMIO_ADMIN_API_SECRET: ecs.Secret.fromSecretsManager(jumioSecret, 'adminSecret'),
        VAULT_API_KEYS: ecs.Secret.fromSecretsManager(apiKeysSecret),
        VAULT_NOTIFY_SECRET: ecs.Secret.fromSecretsManager(notifySecret),
      },
      healthCheck: {
        command: ['CMD', 'node', '-e', HEALTH_CHECK_SCRIPT],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(60),
      },
      // The vault drains in SHUTDOWN_TIMEOUT_MS (10 s by default) after SIGTERM.
      stopTimeout: Duration.seconds(30),
      logging: ecs.LogDrivers.awsLogs({ logGroup: serviceLogs, streamPrefix: 'vault' }),
    });
    vault.addMountPoints({ sourceVolume: 'vault-data', containerPath: DATA_DIR, readOnly: false });
    vault.addContainerDependencies({
      container: rdsCa,
      condition: ecs.ContainerDependencyCondition.SUCCESS,
    });

    // Not essential: a metrics outage must not take callbacks down with it.
    taskDefinition.addContainer('adot-collector', {
      image: ecs.ContainerImage.fromRegistry(s.adotImage),
      essential: false,
      environment: {
        AOT_CONFIG_CONTENT: this.toJsonString(
          adotConfig({ logGroupName: metricsLogs.logGroupName, region: Aws.REGION }),
        ),
      },
      memoryReservationMiB: 128,
      logging: ecs.LogDrivers.awsLogs({ logGroup: serviceLogs, streamPrefix: 'adot' }),
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: s.desiredCount,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      securityGroups: [serviceSg],
      vpcSubnets: appSubnets,
      assignPublicIp: false,
      enableExecuteCommand: false,
      healthCheckGracePeriod: Duration.seconds(120),
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    // ---- Load balancers. Both forward to the same port of the same tasks; what each
    // lets through is decided by its listener rules and security group.
    const targetGroupDefaults = {
      vpc,
      port: VAULT_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      deregistrationDelay: Duration.seconds(30),
      healthCheck: {
        path: '/readyz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    };
    const notFound = elbv2.ListenerAction.fixedResponse(404, {
      contentType: 'application/json',
      messageBody: '{"error":{"code":"not_found","message":"not found"}}',
    });

    const publicAlb = new elbv2.ApplicationLoadBalancer(this, 'PublicLoadBalancer', {
      vpc,
      internetFacing: true,
      securityGroup: publicAlbSg,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      dropInvalidHeaderFields: true,
    });
    // HTTPS only: there is no port 80 listener to redirect from, and Jumio posts to https.
    const publicListener = publicAlb.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(s.certificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: false,
      defaultAction: notFound,
    });
    const webhookTargets = new elbv2.ApplicationTargetGroup(this, 'WebhookTargets', {
      ...targetGroupDefaults,
    });
    publicListener.addAction('JumioCallbacks', {
      priority: 10,
      conditions: [
        elbv2.ListenerCondition.pathPatterns([WEBHOOK_PATH]),
        elbv2.ListenerCondition.httpRequestMethods(['POST']),
      ],
      action: elbv2.ListenerAction.forward([webhookTargets]),
    });

    const internalAlb = new elbv2.ApplicationLoadBalancer(this, 'InternalLoadBalancer', {
      vpc,
      internetFacing: false,
      securityGroup: internalAlbSg,
      vpcSubnets: appSubnets,
      dropInvalidHeaderFields: true,
    });
    const internalListener = internalAlb.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(s.internalCertificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: false,
      defaultAction: notFound,
    });
    const apiTargets = new elbv2.ApplicationTargetGroup(this, 'ApiTargets', {
      ...targetGroupDefaults,
    });
    internalListener.addAction('Api', {
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(INTERNAL_PATHS)],
      action: elbv2.ListenerAction.forward([apiTargets]),
    });

    const target = this.service.loadBalancerTarget({
      containerName: 'vault',
      containerPort: VAULT_PORT,
    });
    webhookTargets.addTarget(target);
    apiTargets.addTarget(target);

    // ---- Alarms.
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'Facemap vault alarms',
      enforceSSL: true,
    });
    if (s.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(s.alarmEmail));
    this.alarms = new VaultAlarms(this, 'Alarms', {
      topic,
      queueAgeAlarmSeconds: s.queueAgeAlarmSeconds,
      jumio5xxAlarmThreshold: s.jumio5xxAlarmThreshold,
      publicLoadBalancer: publicAlb,
      internalLoadBalancer: internalAlb,
      webhookTargetGroup: webhookTargets,
    });

    // Losing the facemap key loses every facemap: say so the moment anyone moves towards
    // that (CloudTrail management events, on in every account by default, feed this).
    new events.Rule(this, 'FacemapKeyChanges', {
      description: 'The facemap KMS key was disabled, scheduled for deletion or re-policied',
      eventPattern: {
        source: ['aws.kms'],
        detailType: ['AWS API Call via CloudTrail'],
        detail: {
          eventSource: ['kms.amazonaws.com'],
          eventName: [
            'ScheduleKeyDeletion',
            'DisableKey',
            'DisableKeyRotation',
            'PutKeyPolicy',
            'CreateGrant',
          ],
          resources: { ARN: [this.facemapKey.keyArn] },
        },
      },
      targets: [new targets.SnsTopic(topic)],
    });

    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output(
      'CallbackEndpoint',
      publicAlb.loadBalancerDnsName,
      `Point the DNS name of ${s.vaultPublicUrl} here (alias/CNAME)`,
    );
    output('InternalApiEndpoint', internalAlb.loadBalancerDnsName, 'The /v1 API, inside the VPC');
    output('FacemapBucketName', bucketName, 'S3_BUCKET');
    output('FacemapKeyArn', this.facemapKey.keyArn, 'KMS_KEY_ID and S3_SSE_KMS_KEY_ID');
    output('DatabaseEndpoint', this.database.dbInstanceEndpointAddress, 'RDS PostgreSQL');
    output('DatabaseSecretArn', databaseSecret.secretArn, 'RDS credentials (username/password)');
    output('JumioSecretArn', jumioSecret.secretArn, 'Set the Jumio credentials here');
    output('ApiKeysSecretArn', apiKeysSecret.secretArn, 'Set VAULT_API_KEYS here');
    output('NotifySecretArn', notifySecret.secretArn, 'VAULT_NOTIFY_SECRET (generated)');
    output('AlarmTopicArn', topic.topicArn, 'Subscribe the on-call here');
    output('ServiceLogGroup', serviceLogs.logGroupName, 'Vault, rds-ca and adot logs');
    output('ClusterName', cluster.clusterName, 'ECS cluster (run vault CLI commands as tasks)');
    output('TaskDefinitionArn', taskDefinition.taskDefinitionArn, 'For `aws ecs run-task`');
    output(
      'AppSubnetIds',
      vpc.privateSubnets.map((subnet) => subnet.subnetId).join(','),
      'Subnets for `aws ecs run-task` (CLI commands)',
    );
    output('ServiceSecurityGroupId', serviceSg.securityGroupId, 'Security group for run-task');
  }
}
