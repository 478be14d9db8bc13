import path from 'node:path';
import { z } from 'zod';
import { KMS_KEY_ARN } from './adapters/crypto/kms-arn';
import { JUMIO_REGION_BASE_URLS } from './adapters/jumio/regions';
import { USER_REFERENCE_FIELDS, type UserReferenceField } from './core/enrollment/callback';
import { isLoopbackHostname } from './core/jumio';
import { notifyUrlProblem, parseAllowedOrigins } from './core/notifications/urls';
import { parseApiKeys, type ApiKey } from './http/api-keys';
import type { HttpServerSettings } from './http/server';
import {
  JUMIO_CALLBACK_IPS,
  LOOPBACK_CIDRS,
  parseCidrList,
  parseTrustProxy,
} from './http/callback-origin';

/**
 * The one schema over the environment, parsed once at start-up. With nothing set the
 * embedded defaults apply: PGlite and blobs under VAULT_DATA_DIR, a generated local
 * master key, and the Jumio simulator in-process.
 */

const MiB = 1024 * 1024;

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const int = (min: number, max: number, fallback: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (/^(true|1|yes)$/i.test(v)) return true;
      if (/^(false|0|no)$/i.test(v)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });

const httpUrl = z
  .string()
  .trim()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return undefined;
    try {
      const url = new URL(v);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
      return url;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
      return z.NEVER;
    }
  });

const oneOf = <T extends string>(values: readonly [T, ...T[]], fallback: T) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if ((values as readonly string[]).includes(v)) return v as T;
      ctx.addIssue({ code: 'custom', message: `must be one of ${values.join(', ')}` });
      return z.NEVER;
    });

/** `Company App/1.2.3`: Jumio wants the business named in the User-Agent. */
const USER_AGENT = /^[\x21-\x7e][\x20-\x7e]* [\x21-\x7e]+\/\d+(\.\d+)*$/;

/** http to this machine: the same loopback rule the Jumio client applies. */
export function isLoopbackHttpUrl(url: URL): boolean {
  return url.protocol === 'http:' && isLoopbackHostname(url.hostname);
}

/** A field parsed by a function that throws; its message becomes the issue. */
const parsedBy = <T>(parse: (v: string) => T) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return undefined;
      try {
        return parse(v);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Drop a leading "NAME: " the parser added itself; the path names the variable.
        ctx.addIssue({ code: 'custom', message: message.replace(/^[A-Z_]+: /, '') });
        return z.NEVER;
      }
    });

/** Comma-separated items, trimmed, empty ones dropped; a repeated item is refused. */
function commaList(value: string): string[] {
  const items = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
  const repeated = items.find((v, i) => items.indexOf(v) !== i);
  if (repeated !== undefined) throw new Error(`lists ${repeated} twice`);
  return items;
}

/** Key ARNs only: the SDK asks KMS only for the keys it was given by ARN. */
function parseKmsKeyIds(value: string): string[] {
  const ids = commaList(value);
  const bad = ids.find((id) => !KMS_KEY_ARN.test(id));
  if (bad !== undefined) {
    throw new Error(
      `${JSON.stringify(bad)} is not a key ARN (arn:aws:kms:<region>:<account>:key/<id>); aliases and bare ids cannot decrypt`,
    );
  }
  return ids;
}

function parseFileList(value: string): string[] {
  return commaList(value).map((file) => path.resolve(file));
}

const envSchema = z.object({
  PORT: int(1, 65535, 8080),
  HOST: optionalString,
  METRICS_PORT: int(0, 65535, 9464),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  VAULT_DATA_DIR: optionalString,
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000, 10_000),
  SHUTDOWN_CLOSE_TIMEOUT_MS: int(100, 600_000, 15_000),
  HTTP_HEADERS_TIMEOUT_MS: int(1000, 600_000, 10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 3_600_000, 30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(1, 600_000, 5_000),
  HTTP_MAX_CONNECTIONS: int(1, 1_000_000, 1000),
  READINESS_CACHE_MS: int(0, 600_000, 10_000),
  AUDIT_DENIAL_INTERVAL_MS: int(1000, 86_400_000, 60_000),

  DATABASE_URL: optionalString,
  DATABASE_POOL_MAX: int(1, 1000, 10),
  DATABASE_MIGRATION_URL: optionalString,
  DATABASE_CONNECT_TIMEOUT_MS: int(100, 300_000, 5_000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(100, 3_600_000, 10_000),
  DATABASE_QUERY_TIMEOUT_MS: int(100, 3_600_000, 15_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(100, 3_600_000, 60_000),
  DATABASE_MIGRATION_TIMEOUT_MS: int(1_000, 86_400_000, 600_000),

  BLOB_STORE: oneOf(['fs', 's3'], 'fs'),
  S3_BUCKET: optionalString,
  S3_PREFIX: optionalString,
  S3_ENDPOINT: httpUrl,
  S3_FORCE_PATH_STYLE: bool(false),
  S3_SSE_KMS_KEY_ID: optionalString,
  AWS_REGION: optionalString,
  AWS_CONNECT_TIMEOUT_MS: int(100, 300_000, 3_000),
  AWS_REQUEST_TIMEOUT_MS: int(100, 600_000, 30_000),
  AWS_SOCKET_TIMEOUT_MS: int(100, 600_000, 30_000),

  KMS_KEY_ID: optionalString,
  KMS_PREVIOUS_KEY_IDS: parsedBy(parseKmsKeyIds),
  VAULT_LOCAL_KEY_FILE: optionalString,
  VAULT_LOCAL_PREVIOUS_KEY_FILES: parsedBy(parseFileList),
  FACEMAP_MAX_BYTES: int(1, 64 * MiB, 5 * MiB),

  JUMIO_REGION: oneOf(['US', 'EU', 'SGP'], 'US'),
  JUMIO_BASE_URL: httpUrl,
  JUMIO_API_TOKEN: optionalString,
  JUMIO_API_SECRET: optionalString,
  JUMIO_ADMIN_API_TOKEN: optionalString,
  JUMIO_ADMIN_API_SECRET: optionalString,
  JUMIO_USER_AGENT: optionalString,
  JUMIO_SIMULATOR_PORT: int(0, 65535, 4010),
  JUMIO_REQUEST_DEADLINE_MS: int(1_000, 600_000, 60_000),
  JUMIO_CALLBACK_ALLOWED_CIDRS: parsedBy((v) => parseCidrList(v, 'JUMIO_CALLBACK_ALLOWED_CIDRS')),
  TRUST_PROXY: parsedBy(parseTrustProxy),

  USER_REFERENCE_FIELD: oneOf(USER_REFERENCE_FIELDS, 'customerId'),
  ENROLLMENT_BINDING: oneOf(['none', 'intent'], 'none'),
  ENROLLMENT_WORKER_INTERVAL_MS: int(10, 3_600_000, 1000),
  WORKER_CONCURRENCY: int(1, 64, 2),
  WORKER_LEASE_MS: int(2_000, 3_600_000, 300_000),
  ORPHAN_SWEEP_INTERVAL_MS: int(1_000, 7 * 24 * 3_600_000, 3_600_000),
  ORPHAN_SWEEP_GRACE_MS: int(1_000, 7 * 24 * 3_600_000, 3_600_000),
  CALLBACK_BATCH_MAX: int(1, 1000, 200),
  CALLBACK_QUEUE_MAX: int(1, 100_000, 2000),
  VAULT_API_KEYS: parsedBy(parseApiKeys),
  RETENTION_DAYS: int(1, 36_500, 1095),
  RETENTION_PURGE_INTERVAL_MS: int(60_000, 7 * 24 * 3_600_000, 3_600_000),
  AUDIT_DIGEST_INTERVAL_MS: int(60_000, 7 * 24 * 3_600_000, 3_600_000),
  AUDIT_SIGNING_KEY_FILE: optionalString,
  AUDIT_SIGNING_KMS_KEY_ID: optionalString,
  NODE_ENV: optionalString,
  VAULT_ALLOW_DEVELOPMENT_DEFAULTS: bool(false),
  VAULT_PUBLIC_URL: optionalString,
  AUTH_MAX_PER_USER_PER_HOUR: int(1, 100_000, 10),
  AUTH_RECONCILE_GRACE_MS: int(0, 24 * 3_600_000, 120_000),
  JUMIO_DELETE_AUTHENTICATIONS: bool(true),
  VAULT_NOTIFY_DEFAULT_URL: optionalString,
  VAULT_NOTIFY_SECRET: optionalString,
  VAULT_NOTIFY_ALLOWED_ORIGINS: parsedBy(parseAllowedOrigins),
});

type Env = z.output<typeof envSchema>;

export interface JumioCredentials {
  token: string;
  secret: string;
}

export type JumioConfig =
  /** No Jumio configured: run the simulator in-process (development and demos). */
  | { mode: 'embedded-simulator'; simulatorPort: number }
  | {
      mode: 'remote';
      baseUrl: string;
      credentials: JumioCredentials;
      adminCredentials: JumioCredentials;
      userAgent: string;
    };

/**
 * Keys being rotated out (README "Rotating keys"): they decrypt what they wrapped until
 * `vault rewrap` has moved it to the current key; they never encrypt. Either kind may sit
 * next to either current key (moving from a local key to KMS is a rotation too).
 */
export interface PreviousKeys {
  /** KMS_PREVIOUS_KEY_IDS: key ARNs. */
  kmsKeyIds: string[];
  /** VAULT_LOCAL_PREVIOUS_KEY_FILES: absolute paths; each must exist, never generated. */
  localKeyFiles: string[];
}

export interface VaultConfig {
  port: number;
  host: string | undefined;
  /** The Prometheus listener; 0: off. */
  metricsPort: number;
  logLevel: string;
  dataDir: string;
  shutdownTimeoutMs: number;
  /** Bound on closing workers, pools and clients after the HTTP drain. */
  shutdownCloseTimeoutMs: number;
  /** The HTTP server's bounds (src/http/server.ts). */
  http: HttpServerSettings;
  /** How long a /readyz result is reused (0: every probe checks). */
  readinessCacheMs: number;
  /** Denied and refused requests are audited as one summary per key per interval. */
  audit: { denialIntervalMs: number };
  database:
    | { kind: 'pglite'; dataDir: string }
    | {
        kind: 'postgres';
        url: string;
        /** The role that owns the tables and applies migrations; `url` when unset. */
        migrationUrl: string | undefined;
        poolMax: number;
        timeouts: DatabaseTimeouts;
      };
  blobs:
    | { kind: 'fs'; root: string }
    | {
        kind: 's3';
        bucket: string;
        prefix: string;
        endpoint: string | undefined;
        forcePathStyle: boolean;
        sseKmsKeyId: string | undefined;
        region: string | undefined;
      };
  /** The key new ciphertexts are encrypted under, and the keys accepted for decrypt only. */
  envelope: (
    { kind: 'kms'; keyId: string; region: string | undefined } | { kind: 'local'; keyFile: string }
  ) & { previous: PreviousKeys };
  facemapMaxBytes: number;
  /** Connection, request (until headers) and socket idle timeouts of every AWS client. */
  aws: AwsTimeouts;
  jumio: JumioConfig;
  /** Total time one Jumio request (attempt) may take, body included. */
  jumioRequestDeadlineMs: number;
  /** Where Jumio callbacks may come from (canonical CIDRs). */
  callbackAllowedCidrs: string[];
  trustProxy: false | number | string[];
  /** Empty with an embedded ledger: an admin token is generated into the data dir. */
  apiKeys: ApiKey[];
  enrollment: {
    userReferenceField: UserReferenceField;
    binding: 'none' | 'intent';
    workerIntervalMs: number;
  };
  compliance: {
    /** BIPA's "3 years after the last interaction" by default. */
    retentionDays: number;
    purgeIntervalMs: number;
    digestIntervalMs: number;
    /** Where the audit digests' signing key lives: never in the database. */
    signing: { kind: 'file'; keyFile: string } | { kind: 'kms'; keyId: string; region: string };
  };
  /** Group commit of ID verification callbacks (src/core/group-commit.ts). */
  callbackBatch: { maxBatch: number; maxQueued: number };
  workers: {
    /** Concurrent steps per queue in this process. */
    concurrency: number;
    /** How long a claimed work row stays this process's (longer than any one step). */
    leaseMs: number;
    orphanSweepIntervalMs: number;
    orphanSweepGraceMs: number;
  };
  authentication: AuthenticationConfig;
  notifications: NotificationConfig;
}

export interface AuthenticationConfig {
  /** Where Jumio reaches this vault: its callbackUrl is this + `/webhooks/jumio`. */
  publicUrl: string;
  maxPerUserPerHour: number;
  /** How long past `expiresAt` an INITIATED authentication waits for its callback. */
  reconcileGraceMs: number;
  /** Delete each final authentication at Jumio (its liveness images are biometric data). */
  deleteAtJumio: boolean;
}

export interface NotificationConfig {
  /** Used when an initiate names no notifyUrl. */
  defaultUrl: string | undefined;
  /** base64 (optionally `whsec_`-prefixed): the Standard Webhooks signing secret. */
  secret: string | undefined;
  /** Canonical origins a notifyUrl may point to. */
  allowedOrigins: string[];
}

export interface DatabaseTimeouts {
  connectMs: number;
  statementMs: number;
  queryMs: number;
  idleInTransactionMs: number;
  /** Statement and query bound for migrations (DDL may take long on a large ledger). */
  migrationMs: number;
}

export interface AwsTimeouts {
  connectMs: number;
  requestMs: number;
  socketMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function pair(
  problems: string[],
  tokenName: string,
  token: string | undefined,
  secretName: string,
  secret: string | undefined,
): JumioCredentials | undefined {
  if (token && secret) return { token, secret };
  if (token && !secret) problems.push(`${secretName}: required when ${tokenName} is set`);
  if (!token && secret) problems.push(`${tokenName}: required when ${secretName} is set`);
  return undefined;
}

/** Production with a development default: each refusal names the setting to use instead. */
const DEVELOPMENT_ONLY =
  'is for development; set VAULT_ALLOW_DEVELOPMENT_DEFAULTS=true to run with it anyway';

function jumioConfig(env: Env, problems: string[], production: boolean): JumioConfig {
  const main = pair(
    problems,
    'JUMIO_API_TOKEN',
    env.JUMIO_API_TOKEN,
    'JUMIO_API_SECRET',
    env.JUMIO_API_SECRET,
  );
  const admin = pair(
    problems,
    'JUMIO_ADMIN_API_TOKEN',
    env.JUMIO_ADMIN_API_TOKEN,
    'JUMIO_ADMIN_API_SECRET',
    env.JUMIO_ADMIN_API_SECRET,
  );
  if (!env.JUMIO_API_TOKEN && !env.JUMIO_API_SECRET && !env.JUMIO_BASE_URL) {
    // A production vault that forgot its Jumio settings must not quietly talk to a fake.
    if (production) {
      for (const name of ['JUMIO_API_TOKEN', 'JUMIO_API_SECRET']) {
        problems.push(
          `${name}: required when NODE_ENV=production (the embedded Jumio simulator ${DEVELOPMENT_ONLY})`,
        );
      }
      if (!env.JUMIO_USER_AGENT) {
        problems.push(
          'JUMIO_USER_AGENT: required for a real Jumio region, shaped like "Company App/1.2.3"',
        );
      }
    }
    return { mode: 'embedded-simulator', simulatorPort: env.JUMIO_SIMULATOR_PORT };
  }
  const baseUrl = env.JUMIO_BASE_URL ?? new URL(JUMIO_REGION_BASE_URLS[env.JUMIO_REGION]);
  if (baseUrl.protocol !== 'https:' && !isLoopbackHttpUrl(baseUrl)) {
    problems.push('JUMIO_BASE_URL: must be https (plain http only for a loopback simulator)');
  }
  if (!env.JUMIO_API_TOKEN && !env.JUMIO_API_SECRET) {
    problems.push('JUMIO_API_TOKEN: required when JUMIO_BASE_URL is set');
    problems.push('JUMIO_API_SECRET: required when JUMIO_BASE_URL is set');
  }
  const userAgent =
    env.JUMIO_USER_AGENT ?? (isLoopbackHttpUrl(baseUrl) ? 'Vault Dev/0.0.0' : undefined);
  if (!userAgent) {
    problems.push(
      'JUMIO_USER_AGENT: required for a real Jumio region, shaped like "Company App/1.2.3"',
    );
  } else if (!USER_AGENT.test(userAgent)) {
    problems.push('JUMIO_USER_AGENT: must look like "Company App/1.2.3"');
  }
  const credentials = main ?? { token: '', secret: '' };
  return {
    mode: 'remote',
    baseUrl: baseUrl.origin,
    credentials,
    adminCredentials: admin ?? credentials,
    userAgent: userAgent ?? '',
  };
}

const CALLBACK_PATH = '/webhooks/jumio';

/**
 * VAULT_PUBLIC_URL: Jumio posts the authentication callback to it, so with a real Jumio
 * region it must be set, https, and short enough for Jumio's 255-character callbackUrl.
 * With a loopback simulator the vault is on this machine: http://127.0.0.1:PORT.
 */
function publicUrlOf(env: Env, loopbackJumio: boolean, problems: string[]): string {
  if (env.VAULT_PUBLIC_URL === undefined) {
    if (loopbackJumio) return `http://127.0.0.1:${env.PORT}`;
    problems.push('VAULT_PUBLIC_URL: required with a real Jumio region (https://...)');
    return '';
  }
  let url: URL;
  try {
    url = new URL(env.VAULT_PUBLIC_URL);
  } catch {
    problems.push('VAULT_PUBLIC_URL: must be an absolute https URL');
    return '';
  }
  const base = url.toString().replace(/\/+$/, '');
  if (url.protocol !== 'https:' && !(loopbackJumio && isLoopbackHttpUrl(url))) {
    problems.push('VAULT_PUBLIC_URL: must be https (http on loopback only, with a simulator)');
  } else if (url.username || url.password || url.search || url.hash) {
    problems.push('VAULT_PUBLIC_URL: must not carry credentials, a query or a fragment');
  } else if (!/^[\x21-\x7e]+$/.test(base) || (base + CALLBACK_PATH).length > 255) {
    problems.push(
      `VAULT_PUBLIC_URL: must be ASCII (punycode) and at most ${255 - CALLBACK_PATH.length} characters`,
    );
  }
  return base;
}

// Standard Webhooks writes secrets as `whsec_` + base64; the prefix is optional (the
// library strips it), so a generated secret of base64 characters works as it is.
const WEBHOOK_SECRET = /^(?:whsec_)?([A-Za-z0-9+/]+={0,2})$/;

function notificationConfig(env: Env, problems: string[]): NotificationConfig {
  const allowedOrigins = env.VAULT_NOTIFY_ALLOWED_ORIGINS ?? [];
  const defaultUrl = env.VAULT_NOTIFY_DEFAULT_URL;
  if (defaultUrl !== undefined) {
    // The operator's own default is allowed by being configured.
    const origin = URL.canParse(defaultUrl) ? new URL(defaultUrl).origin : '';
    const problem = notifyUrlProblem(defaultUrl, [...allowedOrigins, origin]);
    if (problem) problems.push(`VAULT_NOTIFY_DEFAULT_URL: ${problem}`);
  }
  const secret = env.VAULT_NOTIFY_SECRET;
  if (secret !== undefined) {
    const bytes = Buffer.from(WEBHOOK_SECRET.exec(secret)?.[1] ?? '', 'base64').length;
    // Standard Webhooks: secrets of 24 to 64 random bytes.
    if (bytes < 24 || bytes > 64) {
      problems.push(
        'VAULT_NOTIFY_SECRET: must be 24-64 bytes in base64, optionally prefixed with whsec_',
      );
    }
  } else if (defaultUrl !== undefined || allowedOrigins.length > 0) {
    problems.push(
      'VAULT_NOTIFY_SECRET: required when VAULT_NOTIFY_DEFAULT_URL or VAULT_NOTIFY_ALLOWED_ORIGINS is set',
    );
  }
  return { defaultUrl, secret, allowedOrigins };
}

/** The ledger's settings alone: what commands that only touch the ledger need. */
export type LedgerConfig = Pick<VaultConfig, 'dataDir' | 'database'>;

const ledgerSchema = envSchema.pick({
  VAULT_DATA_DIR: true,
  DATABASE_URL: true,
  DATABASE_MIGRATION_URL: true,
  DATABASE_POOL_MAX: true,
  DATABASE_CONNECT_TIMEOUT_MS: true,
  DATABASE_STATEMENT_TIMEOUT_MS: true,
  DATABASE_QUERY_TIMEOUT_MS: true,
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: true,
  DATABASE_MIGRATION_TIMEOUT_MS: true,
});

function ledgerSection(env: z.output<typeof ledgerSchema>, problems: string[]): LedgerConfig {
  if (env.DATABASE_URL && !/^postgres(ql)?:\/\//.test(env.DATABASE_URL)) {
    problems.push('DATABASE_URL: must be a postgres:// or postgresql:// URL');
  }
  if (env.DATABASE_MIGRATION_URL && !/^postgres(ql)?:\/\//.test(env.DATABASE_MIGRATION_URL)) {
    problems.push('DATABASE_MIGRATION_URL: must be a postgres:// or postgresql:// URL');
  }
  if (env.DATABASE_MIGRATION_URL && !env.DATABASE_URL) {
    problems.push(
      'DATABASE_MIGRATION_URL: only with DATABASE_URL (the embedded ledger has no roles)',
    );
  }
  const dataDir = path.resolve(env.VAULT_DATA_DIR ?? './data');
  return {
    dataDir,
    database: env.DATABASE_URL
      ? {
          kind: 'postgres',
          url: env.DATABASE_URL,
          migrationUrl: env.DATABASE_MIGRATION_URL,
          poolMax: env.DATABASE_POOL_MAX,
          timeouts: {
            connectMs: env.DATABASE_CONNECT_TIMEOUT_MS,
            statementMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
            queryMs: env.DATABASE_QUERY_TIMEOUT_MS,
            idleInTransactionMs: env.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            migrationMs: env.DATABASE_MIGRATION_TIMEOUT_MS,
          },
        }
      : { kind: 'pglite', dataDir: path.join(dataDir, 'ledger') },
  };
}

function issuesOf(error: z.ZodError): Array<{ name: string; problem: string }> {
  return error.issues.map((issue) => ({
    name: String(issue.path[0] ?? ''),
    problem: `${issue.path.join('.')}: ${issue.message}`,
  }));
}

/**
 * Parses `source` with `schema` and builds the configuration; throws ConfigError naming
 * every invalid or missing variable at once: the rules across variables are checked too,
 * with each invalid variable taken as unset (and no further problem reported about it).
 */
function parseReportingAll<S extends z.ZodType<Record<string, unknown>>, T>(
  schema: S,
  source: NodeJS.ProcessEnv,
  build: (env: z.output<S>, problems: string[]) => T,
): T {
  const first = schema.safeParse(source);
  const invalid = first.success ? [] : issuesOf(first.error);
  const invalidNames = new Set(invalid.map((i) => i.name));
  const env = first.success
    ? first.data
    : schema.parse(
        Object.fromEntries(Object.entries(source).filter(([name]) => !invalidNames.has(name))),
      );
  const crossField: string[] = [];
  const config = build(env, crossField);
  const problems = [
    ...invalid.map((i) => i.problem),
    ...crossField.filter((p) => !invalidNames.has(p.slice(0, p.indexOf(':')))),
  ];
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return config;
}

/** The whole configuration, for the server. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): VaultConfig {
  return parseReportingAll(envSchema, source, buildConfig);
}

/**
 * Only the ledger's variables (same schema, same rules as loadConfig), for commands such
 * as `vault migrate` that must not demand unrelated settings.
 */
export function loadLedgerConfig(source: NodeJS.ProcessEnv = process.env): LedgerConfig {
  return parseReportingAll(ledgerSchema, source, ledgerSection);
}

function buildConfig(env: Env, problems: string[]): VaultConfig {
  const { dataDir, database } = ledgerSection(env, problems);
  const production = env.NODE_ENV === 'production' && !env.VAULT_ALLOW_DEVELOPMENT_DEFAULTS;

  if (env.BLOB_STORE === 's3' && !env.S3_BUCKET) {
    problems.push('S3_BUCKET: required when BLOB_STORE=s3');
  }
  if (env.BLOB_STORE === 's3' && !env.AWS_REGION) {
    problems.push('AWS_REGION: required when BLOB_STORE=s3');
  }
  if (env.KMS_KEY_ID && !env.AWS_REGION) {
    problems.push('AWS_REGION: required when KMS_KEY_ID is set');
  }
  if (production && !env.KMS_KEY_ID) {
    problems.push(
      `KMS_KEY_ID: required when NODE_ENV=production (a local master key file ${DEVELOPMENT_ONLY})`,
    );
  }
  if (production && !env.DATABASE_URL) {
    problems.push(
      `DATABASE_URL: required when NODE_ENV=production (the embedded PGlite ledger ${DEVELOPMENT_ONLY})`,
    );
  }
  const previous: PreviousKeys = {
    kmsKeyIds: env.KMS_PREVIOUS_KEY_IDS ?? [],
    localKeyFiles: env.VAULT_LOCAL_PREVIOUS_KEY_FILES ?? [],
  };
  if (env.KMS_KEY_ID && previous.kmsKeyIds.includes(env.KMS_KEY_ID)) {
    problems.push('KMS_PREVIOUS_KEY_IDS: must not list KMS_KEY_ID (the current key)');
  }
  const localKeyFile = path.resolve(env.VAULT_LOCAL_KEY_FILE ?? path.join(dataDir, 'master.key'));
  if (!env.KMS_KEY_ID && previous.localKeyFiles.includes(localKeyFile)) {
    problems.push(
      'VAULT_LOCAL_PREVIOUS_KEY_FILES: must not list VAULT_LOCAL_KEY_FILE (the current key)',
    );
  }
  const s3Prefix = env.S3_PREFIX ?? '';
  if (s3Prefix && !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/.test(s3Prefix)) {
    problems.push('S3_PREFIX: must be `/`-separated segments of letters, digits, `.`, `_`, `-`');
  }
  if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS');
  }
  // A store attempt commits only while it holds its lease: the writer of a blob older than
  // the lease can no longer commit it, the writer of a younger one still may.
  if (env.ORPHAN_SWEEP_GRACE_MS <= env.WORKER_LEASE_MS) {
    problems.push('ORPHAN_SWEEP_GRACE_MS: must exceed WORKER_LEASE_MS');
  }
  const jumio = jumioConfig(env, problems, production);
  const loopbackJumio =
    jumio.mode === 'embedded-simulator' || isLoopbackHttpUrl(new URL(jumio.baseUrl));
  // Jumio's published list for the region; loopback when Jumio is a local simulator.
  const callbackAllowedCidrs =
    env.JUMIO_CALLBACK_ALLOWED_CIDRS ??
    parseCidrList(
      (loopbackJumio ? LOOPBACK_CIDRS : JUMIO_CALLBACK_IPS[env.JUMIO_REGION]).join(','),
    );
  const trustProxy = env.TRUST_PROXY ?? false;
  const apiKeys = env.VAULT_API_KEYS ?? [];
  if (apiKeys.length === 0 && production) {
    problems.push(
      `VAULT_API_KEYS: required when NODE_ENV=production (a generated admin token ${DEVELOPMENT_ONLY})`,
    );
  } else if (apiKeys.length === 0 && env.DATABASE_URL) {
    problems.push(
      'VAULT_API_KEYS: required with DATABASE_URL (a generated admin token is for the embedded setup only)',
    );
  }
  const authentication: AuthenticationConfig = {
    publicUrl: publicUrlOf(env, loopbackJumio, problems),
    maxPerUserPerHour: env.AUTH_MAX_PER_USER_PER_HOUR,
    reconcileGraceMs: env.AUTH_RECONCILE_GRACE_MS,
    deleteAtJumio: env.JUMIO_DELETE_AUTHENTICATIONS,
  };
  const notifications = notificationConfig(env, problems);
  if (env.AUDIT_SIGNING_KMS_KEY_ID && !env.AWS_REGION) {
    problems.push('AWS_REGION: required when AUDIT_SIGNING_KMS_KEY_ID is set');
  }
  if (production && !env.AUDIT_SIGNING_KMS_KEY_ID && !env.AUDIT_SIGNING_KEY_FILE) {
    // A key generated into each replica's data directory would give every replica its own
    // signer: digests one writes, another could not verify.
    problems.push(
      `AUDIT_SIGNING_KMS_KEY_ID: required when NODE_ENV=production (or AUDIT_SIGNING_KEY_FILE shared by every replica; a generated key file ${DEVELOPMENT_ONLY})`,
    );
  }
  if (env.AUDIT_SIGNING_KMS_KEY_ID && env.AUDIT_SIGNING_KEY_FILE) {
    problems.push('AUDIT_SIGNING_KEY_FILE: set either it or AUDIT_SIGNING_KMS_KEY_ID, not both');
  }

  return {
    port: env.PORT,
    host: env.HOST,
    metricsPort: env.METRICS_PORT,
    logLevel: env.LOG_LEVEL,
    dataDir,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    shutdownCloseTimeoutMs: env.SHUTDOWN_CLOSE_TIMEOUT_MS,
    http: {
      headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: env.HTTP_MAX_CONNECTIONS,
    },
    readinessCacheMs: env.READINESS_CACHE_MS,
    audit: { denialIntervalMs: env.AUDIT_DENIAL_INTERVAL_MS },
    database,
    blobs:
      env.BLOB_STORE === 's3'
        ? {
            kind: 's3',
            bucket: env.S3_BUCKET ?? '',
            prefix: s3Prefix,
            endpoint: env.S3_ENDPOINT?.toString(),
            forcePathStyle: env.S3_FORCE_PATH_STYLE,
            sseKmsKeyId: env.S3_SSE_KMS_KEY_ID,
            region: env.AWS_REGION,
          }
        : { kind: 'fs', root: path.join(dataDir, 'blobs') },
    envelope: env.KMS_KEY_ID
      ? { kind: 'kms', keyId: env.KMS_KEY_ID, region: env.AWS_REGION, previous }
      : { kind: 'local', keyFile: localKeyFile, previous },
    facemapMaxBytes: env.FACEMAP_MAX_BYTES,
    aws: {
      connectMs: env.AWS_CONNECT_TIMEOUT_MS,
      requestMs: env.AWS_REQUEST_TIMEOUT_MS,
      socketMs: env.AWS_SOCKET_TIMEOUT_MS,
    },
    jumio,
    jumioRequestDeadlineMs: env.JUMIO_REQUEST_DEADLINE_MS,
    callbackAllowedCidrs,
    trustProxy,
    apiKeys,
    enrollment: {
      userReferenceField: env.USER_REFERENCE_FIELD,
      binding: env.ENROLLMENT_BINDING,
      workerIntervalMs: env.ENROLLMENT_WORKER_INTERVAL_MS,
    },
    compliance: {
      retentionDays: env.RETENTION_DAYS,
      purgeIntervalMs: env.RETENTION_PURGE_INTERVAL_MS,
      digestIntervalMs: env.AUDIT_DIGEST_INTERVAL_MS,
      signing: env.AUDIT_SIGNING_KMS_KEY_ID
        ? { kind: 'kms', keyId: env.AUDIT_SIGNING_KMS_KEY_ID, region: env.AWS_REGION! }
        : {
            kind: 'file',
            keyFile: path.resolve(
              env.AUDIT_SIGNING_KEY_FILE ?? path.join(dataDir, 'audit-signing.key'),
            ),
          },
    },
    callbackBatch: { maxBatch: env.CALLBACK_BATCH_MAX, maxQueued: env.CALLBACK_QUEUE_MAX },
    workers: {
      concurrency: env.WORKER_CONCURRENCY,
      leaseMs: env.WORKER_LEASE_MS,
      orphanSweepIntervalMs: env.ORPHAN_SWEEP_INTERVAL_MS,
      orphanSweepGraceMs: env.ORPHAN_SWEEP_GRACE_MS,
    },
    authentication,
    notifications,
  };
}
