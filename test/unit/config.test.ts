import path from 'node:path';
import { ConfigError, loadConfig, loadLedgerConfig } from '../../src/config';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the embedded defaults when nothing is set', () => {
    const config = loadConfig({});
    const dataDir = path.resolve('./data');
    expect(config.port).toBe(8080);
    expect(config.dataDir).toBe(dataDir);
    expect(config.database).toEqual({ kind: 'pglite', dataDir: path.join(dataDir, 'ledger') });
    expect(config.blobs).toEqual({ kind: 'fs', root: path.join(dataDir, 'blobs') });
    expect(config.envelope).toEqual({
      kind: 'local',
      keyFile: path.join(dataDir, 'master.key'),
      previous: { kmsKeyIds: [], localKeyFiles: [] },
    });
    expect(config.facemapMaxBytes).toBe(5 * 1024 * 1024);
    expect(config.jumio).toEqual({ mode: 'embedded-simulator', simulatorPort: 4010 });
    expect(config.callbackAllowedCidrs).toEqual(['127.0.0.0/8', '::1/128']);
    expect(config.trustProxy).toBe(false);
    expect(config.apiKeys).toEqual([]);
    expect(config.enrollment).toEqual({
      userReferenceField: 'customerId',
      binding: 'none',
      workerIntervalMs: 1000,
    });
  });

  it('selects PostgreSQL, S3 and KMS by configuration alone', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://vault@db:5432/vault',
      BLOB_STORE: 's3',
      S3_BUCKET: 'facemaps',
      S3_PREFIX: 'prod/',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_FORCE_PATH_STYLE: 'true',
      S3_SSE_KMS_KEY_ID: 'alias/s3',
      AWS_REGION: 'eu-west-1',
      KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
      FACEMAP_MAX_BYTES: '1048576',
      JUMIO_REGION: 'EU',
      JUMIO_API_TOKEN: 't',
      JUMIO_API_SECRET: 's',
      JUMIO_USER_AGENT: 'Acme Vault/1.2.3',
      VAULT_API_KEYS: `ops:admin:${'a'.repeat(64)}`,
      VAULT_PUBLIC_URL: 'https://vault.bank.example/',
    });
    expect(config.database).toEqual({
      kind: 'postgres',
      url: 'postgres://vault@db:5432/vault',
      migrationUrl: undefined,
      poolMax: 10,
      // Every wait on the database is bounded by default.
      timeouts: {
        connectMs: 5_000,
        statementMs: 10_000,
        queryMs: 15_000,
        idleInTransactionMs: 60_000,
        migrationMs: 600_000,
      },
    });
    expect(config.aws).toEqual({ connectMs: 3_000, requestMs: 30_000, socketMs: 30_000 });
    expect(config.jumioRequestDeadlineMs).toBe(60_000);
    expect(config.shutdownCloseTimeoutMs).toBe(15_000);
    expect(config.blobs).toMatchObject({
      kind: 's3',
      bucket: 'facemaps',
      prefix: 'prod/',
      endpoint: 'http://127.0.0.1:9000/',
      forcePathStyle: true,
      sseKmsKeyId: 'alias/s3',
    });
    expect(config.envelope).toEqual({
      kind: 'kms',
      keyId: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
      region: 'eu-west-1',
      previous: { kmsKeyIds: [], localKeyFiles: [] },
    });
    expect(config.facemapMaxBytes).toBe(1048576);
    // A real region: Jumio's published callback addresses for it, not loopback.
    expect(config.callbackAllowedCidrs).toContain('34.253.41.236/32');
    expect(config.callbackAllowedCidrs).not.toContain('127.0.0.0/8');
    expect(config.apiKeys.map((k) => [k.name, k.role])).toEqual([['ops', 'admin']]);
    expect(config.jumio).toEqual({
      mode: 'remote',
      baseUrl: 'https://lon.netverify.com',
      credentials: { token: 't', secret: 's' },
      adminCredentials: { token: 't', secret: 's' },
      userAgent: 'Acme Vault/1.2.3',
    });
  });

  it('names every invalid or missing variable at once', () => {
    const problems = problemsOf({
      PORT: 'abc',
      BLOB_STORE: 's3',
      LOG_LEVEL: 'loud',
      FACEMAP_MAX_BYTES: '-1',
      S3_FORCE_PATH_STYLE: 'maybe',
    });
    const named = problems.map((p) => p.split(':')[0]);
    expect(named).toEqual(
      expect.arrayContaining(['PORT', 'LOG_LEVEL', 'FACEMAP_MAX_BYTES', 'S3_FORCE_PATH_STYLE']),
    );
    expect(problemsOf({ BLOB_STORE: 's3' })).toEqual(
      expect.arrayContaining([
        'S3_BUCKET: required when BLOB_STORE=s3',
        'AWS_REGION: required when BLOB_STORE=s3',
      ]),
    );
  });

  it('reads the migration role and the timeouts, and refuses a migration URL alone', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://app@db/vault',
      DATABASE_MIGRATION_URL: 'postgres://owner@db/vault',
      DATABASE_CONNECT_TIMEOUT_MS: '2000',
      DATABASE_QUERY_TIMEOUT_MS: '30000',
      AWS_SOCKET_TIMEOUT_MS: '5000',
      JUMIO_REQUEST_DEADLINE_MS: '90000',
      SHUTDOWN_CLOSE_TIMEOUT_MS: '3000',
      VAULT_API_KEYS: `ops:admin:${'a'.repeat(64)}`,
    });
    expect(config.database).toMatchObject({
      migrationUrl: 'postgres://owner@db/vault',
      timeouts: { connectMs: 2_000, queryMs: 30_000 },
    });
    expect(config.aws.socketMs).toBe(5_000);
    expect(config.jumioRequestDeadlineMs).toBe(90_000);
    expect(config.shutdownCloseTimeoutMs).toBe(3_000);
    expect(problemsOf({ DATABASE_MIGRATION_URL: 'postgres://owner@db/vault' })).toContain(
      'DATABASE_MIGRATION_URL: only with DATABASE_URL (the embedded ledger has no roles)',
    );
    expect(
      problemsOf({ DATABASE_URL: 'postgres://a@db/v', DATABASE_MIGRATION_URL: 'mysql://x' }),
    ).toContain('DATABASE_MIGRATION_URL: must be a postgres:// or postgresql:// URL');
    expect(problemsOf({ AWS_REQUEST_TIMEOUT_MS: '0' }).map((p) => p.split(':')[0])).toContain(
      'AWS_REQUEST_TIMEOUT_MS',
    );
  });

  it('refuses ports out of range and non-integers', () => {
    for (const PORT of ['0', '65536', '80.5', '8080x', ' ']) {
      if (PORT.trim() === '') {
        expect(loadConfig({ PORT }).port).toBe(8080);
        continue;
      }
      expect(problemsOf({ PORT })).toEqual(['PORT: must be an integer from 1 to 65535']);
    }
  });

  it('requires a Jumio User-Agent for a real region and the secret with the token', () => {
    expect(problemsOf({ JUMIO_API_TOKEN: 't' })).toEqual(
      expect.arrayContaining([
        'JUMIO_API_SECRET: required when JUMIO_API_TOKEN is set',
        expect.stringMatching(/^JUMIO_USER_AGENT: required/),
      ]),
    );
    expect(
      problemsOf({
        JUMIO_API_TOKEN: 't',
        JUMIO_API_SECRET: 's',
        JUMIO_USER_AGENT: 'curl',
        VAULT_PUBLIC_URL: 'https://vault.bank.example',
      }),
    ).toEqual(['JUMIO_USER_AGENT: must look like "Company App/1.2.3"']);
  });

  it('allows plain http for Jumio only on loopback (the simulator)', () => {
    const local = loadConfig({
      JUMIO_BASE_URL: 'http://127.0.0.1:4010',
      JUMIO_API_TOKEN: 't',
      JUMIO_API_SECRET: 's',
    });
    expect(local.jumio).toMatchObject({ mode: 'remote', baseUrl: 'http://127.0.0.1:4010' });
    expect(
      problemsOf({
        JUMIO_BASE_URL: 'http://jumio.example.com',
        JUMIO_API_TOKEN: 't',
        JUMIO_API_SECRET: 's',
        JUMIO_USER_AGENT: 'Acme Vault/1.0',
        VAULT_PUBLIC_URL: 'https://vault.bank.example',
      }),
    ).toEqual([expect.stringMatching(/^JUMIO_BASE_URL: must be https/)]);
  });

  it('validates the callback allowlist, trust proxy, API keys and enrollment settings', () => {
    const problems = problemsOf({
      JUMIO_CALLBACK_ALLOWED_CIDRS: '10.0.0.0/8, not-an-ip',
      TRUST_PROXY: 'sometimes',
      VAULT_API_KEYS: 'ops:root:abc',
      USER_REFERENCE_FIELD: 'idNumber',
      ENROLLMENT_BINDING: 'maybe',
    });
    const named = problems.map((p) => p.split(':')[0]).sort();
    expect(named).toEqual(
      [
        'ENROLLMENT_BINDING',
        'JUMIO_CALLBACK_ALLOWED_CIDRS',
        'TRUST_PROXY',
        'USER_REFERENCE_FIELD',
        'VAULT_API_KEYS',
      ].sort(),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^VAULT_API_KEYS: entry 1/));
    expect(problemsOf({ DATABASE_URL: 'postgres://db/vault' })).toEqual([
      expect.stringMatching(/^VAULT_API_KEYS: required with DATABASE_URL/),
    ]);
    const ok = loadConfig({
      JUMIO_CALLBACK_ALLOWED_CIDRS: '203.0.113.0/24 2001:db8::/32',
      TRUST_PROXY: '1',
      USER_REFERENCE_FIELD: 'merchantIdScanReference',
      ENROLLMENT_BINDING: 'intent',
    });
    expect(ok.callbackAllowedCidrs).toEqual(['203.0.113.0/24', '2001:db8::/32']);
    expect(ok.trustProxy).toBe(1);
    expect(ok.enrollment.userReferenceField).toBe('merchantIdScanReference');
    expect(ok.enrollment.binding).toBe('intent');
  });

  it('refuses every development default when NODE_ENV=production, naming the setting to use', () => {
    const problems = problemsOf({ NODE_ENV: 'production' });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^JUMIO_API_TOKEN: required when NODE_ENV=production .*simulator/),
        expect.stringMatching(/^JUMIO_API_SECRET: required when NODE_ENV=production/),
        expect.stringMatching(/^KMS_KEY_ID: required when NODE_ENV=production .*local master key/),
        expect.stringMatching(/^DATABASE_URL: required when NODE_ENV=production .*PGlite/),
        expect.stringMatching(/^VAULT_API_KEYS: required when NODE_ENV=production .*admin token/),
        expect.stringMatching(
          /^AUDIT_SIGNING_KMS_KEY_ID: required when NODE_ENV=production .*AUDIT_SIGNING_KEY_FILE/,
        ),
      ]),
    );
    for (const p of problems.filter((p) => /NODE_ENV=production/.test(p))) {
      expect(p).toContain('VAULT_ALLOW_DEVELOPMENT_DEFAULTS=true');
    }
    expect(loadConfig({ NODE_ENV: 'development' }).jumio.mode).toBe('embedded-simulator');
    // Explicitly allowed: the embedded defaults, as without NODE_ENV.
    const allowed = loadConfig({
      NODE_ENV: 'production',
      VAULT_ALLOW_DEVELOPMENT_DEFAULTS: 'true',
    });
    expect(allowed.jumio.mode).toBe('embedded-simulator');
    expect(allowed.envelope.kind).toBe('local');
    expect(allowed.database.kind).toBe('pglite');
    expect(allowed.apiKeys).toEqual([]);
    // A production configuration proper starts.
    const production = loadConfig({
      NODE_ENV: 'production',
      JUMIO_API_TOKEN: 't',
      JUMIO_API_SECRET: 's',
      JUMIO_USER_AGENT: 'Acme Vault/1.0',
      KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
      AWS_REGION: 'eu-west-1',
      DATABASE_URL: 'postgres://vault@db/vault',
      VAULT_API_KEYS: `ops:admin:${'a'.repeat(64)}`,
      VAULT_PUBLIC_URL: 'https://vault.bank.example',
      AUDIT_SIGNING_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/mac',
    });
    expect(production.jumio.mode).toBe('remote');
    // Each development default alone is refused.
    const { KMS_KEY_ID: _k, ...noKms } = {
      NODE_ENV: 'production',
      JUMIO_API_TOKEN: 't',
      JUMIO_API_SECRET: 's',
      JUMIO_USER_AGENT: 'Acme Vault/1.0',
      KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
      AWS_REGION: 'eu-west-1',
      DATABASE_URL: 'postgres://vault@db/vault',
      VAULT_API_KEYS: `ops:admin:${'a'.repeat(64)}`,
      VAULT_PUBLIC_URL: 'https://vault.bank.example',
      AUDIT_SIGNING_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/mac',
    };
    expect(problemsOf(noKms)).toEqual([expect.stringMatching(/^KMS_KEY_ID: required/)]);
  });

  it('reports cross-variable problems together with invalid values, in one run', () => {
    const problems = problemsOf({
      PORT: 'abc',
      JUMIO_BASE_URL: 'https://netverify.com',
      BLOB_STORE: 's3',
      HTTP_HEADERS_TIMEOUT_MS: '20000',
      HTTP_REQUEST_TIMEOUT_MS: '10000',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'PORT: must be an integer from 1 to 65535',
        'JUMIO_API_TOKEN: required when JUMIO_BASE_URL is set',
        'JUMIO_API_SECRET: required when JUMIO_BASE_URL is set',
        expect.stringMatching(/^JUMIO_USER_AGENT: required/),
        'S3_BUCKET: required when BLOB_STORE=s3',
        'AWS_REGION: required when BLOB_STORE=s3',
        'HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS',
      ]),
    );
    // An invalid variable is reported once, for its value, not again by a rule using it.
    expect(problemsOf({ DATABASE_URL: 'postgres://db/x', VAULT_API_KEYS: 'ops:root:abc' })).toEqual(
      [expect.stringMatching(/^VAULT_API_KEYS: entry 1/)],
    );
  });

  it('reads the HTTP server, readiness cache and denial audit settings', () => {
    expect(loadConfig({}).http).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 1000,
    });
    const config = loadConfig({
      HTTP_HEADERS_TIMEOUT_MS: '2000',
      HTTP_REQUEST_TIMEOUT_MS: '4000',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000',
      HTTP_MAX_CONNECTIONS: '50',
      READINESS_CACHE_MS: '0',
      AUDIT_DENIAL_INTERVAL_MS: '5000',
    });
    expect(config.http).toEqual({
      headersTimeoutMs: 2000,
      requestTimeoutMs: 4000,
      keepAliveTimeoutMs: 65_000,
      maxConnections: 50,
    });
    expect(config.readinessCacheMs).toBe(0);
    expect(config.audit).toEqual({ denialIntervalMs: 5000 });
    expect(loadConfig({}).readinessCacheMs).toBe(10_000);
    expect(loadConfig({}).audit.denialIntervalMs).toBe(60_000);
  });

  it('reads the worker lease and refuses an orphan sweep grace that does not exceed it', () => {
    expect(loadConfig({}).workers).toMatchObject({
      leaseMs: 300_000,
      orphanSweepIntervalMs: 3_600_000,
      orphanSweepGraceMs: 3_600_000,
    });
    expect(
      loadConfig({
        WORKER_LEASE_MS: '4000',
        ORPHAN_SWEEP_INTERVAL_MS: '2000',
        ORPHAN_SWEEP_GRACE_MS: '6000',
      }).workers,
    ).toMatchObject({ leaseMs: 4000, orphanSweepIntervalMs: 2000, orphanSweepGraceMs: 6000 });
    expect(problemsOf({ ORPHAN_SWEEP_GRACE_MS: '60000' })).toEqual([
      'ORPHAN_SWEEP_GRACE_MS: must exceed WORKER_LEASE_MS',
    ]);
    expect(problemsOf({ WORKER_LEASE_MS: '500' }).map((p) => p.split(':')[0])).toEqual([
      'WORKER_LEASE_MS',
    ]);
  });

  describe('authentication and notification settings', () => {
    const realJumio = {
      JUMIO_REGION: 'EU',
      JUMIO_API_TOKEN: 't',
      JUMIO_API_SECRET: 's',
      JUMIO_USER_AGENT: 'Acme Vault/1.0',
    };
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

    it('has defaults, and derives VAULT_PUBLIC_URL from PORT on loopback with the simulator', () => {
      const config = loadConfig({ PORT: '9090' });
      expect(config.authentication).toEqual({
        publicUrl: 'http://127.0.0.1:9090',
        maxPerUserPerHour: 10,
        reconcileGraceMs: 120_000,
        deleteAtJumio: true,
      });
      expect(config.notifications).toEqual({
        defaultUrl: undefined,
        secret: undefined,
        allowedOrigins: [],
      });
      const simulator = loadConfig({
        JUMIO_BASE_URL: 'http://127.0.0.1:4010',
        JUMIO_API_TOKEN: 't',
        JUMIO_API_SECRET: 's',
        VAULT_PUBLIC_URL: 'http://127.0.0.1:7000/',
      });
      expect(simulator.authentication.publicUrl).toBe('http://127.0.0.1:7000');
    });

    it('requires an https VAULT_PUBLIC_URL with a real Jumio region', () => {
      expect(problemsOf(realJumio)).toEqual([
        'VAULT_PUBLIC_URL: required with a real Jumio region (https://...)',
      ]);
      expect(problemsOf({ ...realJumio, VAULT_PUBLIC_URL: 'http://127.0.0.1:8080' })).toEqual([
        expect.stringMatching(/^VAULT_PUBLIC_URL: must be https/),
      ]);
      expect(
        problemsOf({ ...realJumio, VAULT_PUBLIC_URL: `https://v.example/${'a'.repeat(230)}` }),
      ).toEqual([expect.stringMatching(/^VAULT_PUBLIC_URL: must be ASCII .* at most 240/)]);
      expect(problemsOf({ ...realJumio, VAULT_PUBLIC_URL: 'https://v.example/?x=1' })).toEqual([
        expect.stringMatching(/^VAULT_PUBLIC_URL: must not carry/),
      ]);
      const ok = loadConfig({ ...realJumio, VAULT_PUBLIC_URL: 'https://vault.bank.example/v/' });
      expect(ok.authentication.publicUrl).toBe('https://vault.bank.example/v');
    });

    it('reads the rate limit, the grace period and Jumio deletion', () => {
      const config = loadConfig({
        AUTH_MAX_PER_USER_PER_HOUR: '3',
        AUTH_RECONCILE_GRACE_MS: '0',
        JUMIO_DELETE_AUTHENTICATIONS: 'false',
      });
      expect(config.authentication).toMatchObject({
        maxPerUserPerHour: 3,
        reconcileGraceMs: 0,
        deleteAtJumio: false,
      });
      expect(
        problemsOf({ AUTH_MAX_PER_USER_PER_HOUR: '0', JUMIO_DELETE_AUTHENTICATIONS: 'sometimes' })
          .map((p) => p.split(':')[0])
          .sort(),
      ).toEqual(['AUTH_MAX_PER_USER_PER_HOUR', 'JUMIO_DELETE_AUTHENTICATIONS']);
    });

    it('validates notification origins, the default URL and the signing secret', () => {
      const config = loadConfig({
        VAULT_NOTIFY_ALLOWED_ORIGINS: 'https://login.bank.example, http://127.0.0.1:9000/',
        VAULT_NOTIFY_DEFAULT_URL: 'https://hooks.bank.example/vault',
        VAULT_NOTIFY_SECRET: secret,
      });
      expect(config.notifications).toEqual({
        allowedOrigins: ['https://login.bank.example', 'http://127.0.0.1:9000'],
        defaultUrl: 'https://hooks.bank.example/vault',
        secret,
      });
      expect(problemsOf({ VAULT_NOTIFY_ALLOWED_ORIGINS: 'http://hooks.example' })).toEqual([
        expect.stringMatching(/^VAULT_NOTIFY_ALLOWED_ORIGINS: .* must be https/),
      ]);
      expect(problemsOf({ VAULT_NOTIFY_ALLOWED_ORIGINS: 'https://a.example/path' })).toEqual([
        expect.stringMatching(/^VAULT_NOTIFY_ALLOWED_ORIGINS: .* must be an origin only/),
      ]);
      expect(problemsOf({ VAULT_NOTIFY_DEFAULT_URL: 'https://hooks.example/x' })).toEqual([
        expect.stringMatching(/^VAULT_NOTIFY_SECRET: required/),
      ]);
      expect(
        problemsOf({
          VAULT_NOTIFY_DEFAULT_URL: 'http://hooks.example/x',
          VAULT_NOTIFY_SECRET: 'whsec_c2hvcnQ=',
        }),
      ).toEqual([
        expect.stringMatching(/^VAULT_NOTIFY_DEFAULT_URL: must be https/),
        expect.stringMatching(/^VAULT_NOTIFY_SECRET: must be 24-64 bytes in base64/),
      ]);
      // The prefix is optional: a generated base64 secret (as the CDK app makes) works.
      const bare = 'A1b2C3d4'.repeat(8); // 64 base64 characters: 48 bytes
      for (const secret of [bare, `whsec_${bare}`]) {
        expect(
          loadConfig({
            VAULT_NOTIFY_DEFAULT_URL: 'https://hooks.example/x',
            VAULT_NOTIFY_SECRET: secret,
          }).notifications.secret,
        ).toBe(secret);
      }
      expect(problemsOf({ VAULT_NOTIFY_SECRET: 'not base64!' })).toEqual([
        expect.stringMatching(/^VAULT_NOTIFY_SECRET: must be 24-64 bytes in base64/),
      ]);
    });
  });

  describe('previous keys (rotation)', () => {
    const OLD = 'arn:aws:kms:eu-west-1:111122223333:key/old-1';
    const OLDER = 'arn:aws:kms:us-east-1:111122223333:key/old-2';
    const CURRENT = 'arn:aws:kms:eu-west-1:111122223333:key/new';

    it('reads KMS_PREVIOUS_KEY_IDS and VAULT_LOCAL_PREVIOUS_KEY_FILES as lists', () => {
      const config = loadConfig({
        KMS_KEY_ID: CURRENT,
        AWS_REGION: 'eu-west-1',
        KMS_PREVIOUS_KEY_IDS: ` ${OLD}, ${OLDER},`,
        VAULT_LOCAL_PREVIOUS_KEY_FILES: 'keys/a.key,/etc/vault/b.key',
      });
      expect(config.envelope.previous).toEqual({
        kmsKeyIds: [OLD, OLDER],
        localKeyFiles: [path.resolve('keys/a.key'), '/etc/vault/b.key'],
      });
      const local = loadConfig({ VAULT_LOCAL_PREVIOUS_KEY_FILES: '/keys/old.key' });
      expect(local.envelope).toMatchObject({
        kind: 'local',
        previous: { kmsKeyIds: [], localKeyFiles: ['/keys/old.key'] },
      });
    });

    it('refuses aliases, repeats, and the current key listed as previous', () => {
      expect(
        problemsOf({
          KMS_KEY_ID: CURRENT,
          AWS_REGION: 'eu-west-1',
          KMS_PREVIOUS_KEY_IDS: `${OLD},alias/old`,
        }),
      ).toEqual([expect.stringMatching(/^KMS_PREVIOUS_KEY_IDS: "alias\/old" is not a key ARN/)]);
      expect(problemsOf({ KMS_PREVIOUS_KEY_IDS: `${OLD},${OLD}` })).toEqual([
        `KMS_PREVIOUS_KEY_IDS: lists ${OLD} twice`,
      ]);
      expect(
        problemsOf({ KMS_KEY_ID: CURRENT, AWS_REGION: 'eu-west-1', KMS_PREVIOUS_KEY_IDS: CURRENT }),
      ).toEqual(['KMS_PREVIOUS_KEY_IDS: must not list KMS_KEY_ID (the current key)']);
      expect(
        problemsOf({
          VAULT_LOCAL_KEY_FILE: '/keys/current.key',
          VAULT_LOCAL_PREVIOUS_KEY_FILES: '/keys/old.key,/keys/current.key',
        }),
      ).toEqual([
        'VAULT_LOCAL_PREVIOUS_KEY_FILES: must not list VAULT_LOCAL_KEY_FILE (the current key)',
      ]);
    });
  });

  it('never echoes a secret value in its messages', () => {
    const problems = problemsOf({
      JUMIO_API_SECRET: 'super-secret-value',
      DATABASE_URL: 'mysql://user:hunter2@db/x',
    });
    expect(problems.join('\n')).not.toMatch(/super-secret-value|hunter2/);
  });
});

describe('loadLedgerConfig (vault migrate, vault replay)', () => {
  it('reads the ledger settings as loadConfig does, and nothing else', () => {
    const env = {
      DATABASE_URL: 'postgres://vault@db:5432/vault',
      DATABASE_POOL_MAX: '4',
      VAULT_DATA_DIR: '/var/lib/vault',
    };
    const ledger = loadLedgerConfig(env);
    expect(ledger).toEqual({
      dataDir: '/var/lib/vault',
      database: {
        kind: 'postgres',
        url: 'postgres://vault@db:5432/vault',
        migrationUrl: undefined,
        poolMax: 4,
        timeouts: {
          connectMs: 5000,
          statementMs: 10_000,
          queryMs: 15_000,
          idleInTransactionMs: 60_000,
          migrationMs: 600_000,
        },
      },
    });
    // Same section as the server's, whose other checks demand VAULT_API_KEYS here.
    expect(problemsOf(env)).toEqual([expect.stringMatching(/^VAULT_API_KEYS: required/)]);
    expect(loadLedgerConfig({})).toEqual({
      dataDir: loadConfig({}).dataDir,
      database: loadConfig({}).database,
    });
  });

  it('ignores unrelated settings, even invalid ones', () => {
    expect(() =>
      loadLedgerConfig({ PORT: 'abc', BLOB_STORE: 's3', JUMIO_API_TOKEN: 'only-half' }),
    ).not.toThrow();
  });

  it('refuses bad ledger settings, naming the variable', () => {
    let problems: string[] = [];
    try {
      loadLedgerConfig({ DATABASE_URL: 'mysql://x', DATABASE_POOL_MAX: '0' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    // Every problem at once, as loadConfig reports them.
    expect(problems).toEqual([
      expect.stringMatching(/^DATABASE_POOL_MAX: /),
      'DATABASE_URL: must be a postgres:// or postgresql:// URL',
    ]);
    expect(() => loadLedgerConfig({ DATABASE_URL: 'mysql://x' })).toThrow(
      /DATABASE_URL: must be a postgres/,
    );
  });
});
