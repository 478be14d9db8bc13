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
    expect(config.envelope).toEqual({ kind: 'local', keyFile: path.join(dataDir, 'master.key') });
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
    });
    expect(config.database).toEqual({
      kind: 'postgres',
      url: 'postgres://vault@db:5432/vault',
      poolMax: 10,
    });
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
    // Cross-field rules are reported once the single fields are valid.
    expect(problemsOf({ BLOB_STORE: 's3' })).toEqual(
      expect.arrayContaining([
        'S3_BUCKET: required when BLOB_STORE=s3',
        'AWS_REGION: required when BLOB_STORE=s3',
      ]),
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
      problemsOf({ JUMIO_API_TOKEN: 't', JUMIO_API_SECRET: 's', JUMIO_USER_AGENT: 'curl' }),
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

  it('refuses the embedded Jumio simulator when NODE_ENV=production', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      expect.stringMatching(/^JUMIO_API_TOKEN: required when NODE_ENV=production/),
    ]);
    expect(loadConfig({ NODE_ENV: 'development' }).jumio.mode).toBe('embedded-simulator');
    expect(
      loadConfig({
        NODE_ENV: 'production',
        JUMIO_API_TOKEN: 't',
        JUMIO_API_SECRET: 's',
        JUMIO_USER_AGENT: 'Acme Vault/1.0',
      }).jumio.mode,
    ).toBe('remote');
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
      database: { kind: 'postgres', url: 'postgres://vault@db:5432/vault', poolMax: 4 },
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
    expect(problems).toEqual([expect.stringMatching(/^DATABASE_POOL_MAX: /)]);
    expect(() => loadLedgerConfig({ DATABASE_URL: 'mysql://x' })).toThrow(
      /DATABASE_URL: must be a postgres/,
    );
  });
});
