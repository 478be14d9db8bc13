import { mkdir } from 'node:fs/promises';
import { FsBlobStore } from './adapters/blobs/fs-blob-store';
import { createS3Client, S3BlobStore } from './adapters/blobs/s3-blob-store';
import { EncryptionSdkEnvelope } from './adapters/crypto/encryption-sdk-envelope';
import { createKmsClient, kmsKeyring, localKeyring } from './adapters/crypto/keyrings';
import { loadLocalKey, loadOrCreateLocalKey } from './adapters/crypto/local-key';
import { runMigrations } from './adapters/ledger/migrations';
import {
  instrumentBlobStore,
  instrumentEnvelope,
  instrumentJumio,
  instrumentLedger,
  Metrics,
} from './adapters/metrics';
import { PgDatabase } from './adapters/ledger/pg-database';
import { PgliteDatabase } from './adapters/ledger/pglite-database';
import type { SqlDatabase } from './adapters/ledger/sql';
import { heldCiphertexts, type HeldCiphertexts, SqlLedger } from './adapters/ledger/sql-ledger';
import {
  DEFAULT_JUMIO_TIMEOUTS,
  UndiciJumioClient,
  type UndiciJumioClientOptions,
} from './adapters/jumio/undici-jumio-client';
import {
  StandardWebhooksSigner,
  UndiciNotificationSender,
  type WebhookTimeouts,
} from './adapters/notifications/webhook-sender';
import type { AppDeps, DependencyTargets } from './app';
import type { JumioConfig, LedgerConfig, VaultConfig } from './config';
import { AuthenticationJob, IdempotencyKeyPurge } from './core/authentication/reconcile';
import { AuthenticationService } from './core/authentication/service';
import { DenialAggregator } from './core/denials';
import { NotificationAdmin, NotificationJob } from './core/notifications/outbox';
import { loadUserReferenceHasher } from './core/enrollment/context';
import { DecryptionError, VaultError } from './core/errors';
import { BlobStores } from './core/blobs';
import { OrphanSweep } from './core/enrollment/orphans';
import { AuditDigestTask } from './core/compliance/audit-trail';
import { loadCursorCodec } from './core/compliance/cursor';
import { ErasureService } from './core/compliance/erasure';
import { RetentionPurge } from './core/compliance/retention';
import { FileAuditSigner } from './adapters/audit/file-signer';
import { KmsAuditSigner } from './adapters/audit/kms-signer';
import { EnrollmentPipeline, type PipelineOptions } from './core/enrollment/pipeline';
import { ScheduleJob } from './core/schedules';
import type { JumioApi } from './core/jumio';
import { startLoop, type Loop } from './core/loop';
import {
  type AuditSigner,
  type BlobStore,
  type Clock,
  type Envelope,
  type Logger,
  type NotificationSender,
  systemClock,
} from './core/ports';
import { type Backoff, Worker } from './core/work';
import { ensureAdminToken } from './http/api-keys';
import { CidrAllowlist } from './http/callback-origin';
import { startSimulator, type RunningSimulator } from './simulator/server';

/** The only place adapters are constructed: everything else receives ports. */
export interface Container extends AppDeps {
  metrics: Metrics;
  jumio: JumioApi;
  pipeline: EnrollmentPipeline;
  /** Periodic tasks (orphan sweep) on the `schedules` queue; tests step it themselves. */
  schedules: { runOnce(): Promise<number> };
  /** Reconciliation and deletion at Jumio of authentications; tests step it themselves. */
  authenticationWorker: { runOnce(): Promise<number> };
  /** The notification outbox; tests step it themselves. */
  notificationWorker: { runOnce(): Promise<number> };
  /** The `erasures` queue (erasure on request and by retention); tests step it. */
  erasures: ErasureService;
  /** The in-process Jumio simulator on embedded defaults. */
  simulator: RunningSimulator | undefined;
  /** Starts the background workers (main.ts; tests drive the pipeline themselves). */
  startWorkers(): void;
  /** Stops workers, then closes pools and handles; call once at shutdown. */
  close(): Promise<void>;
}

/** Start-up options, and overrides for tests (pipeline hooks, retry schedules, fault injection). */
export interface ContainerOverrides {
  pipeline?: Partial<PipelineOptions>;
  /** Wraps the configured blob store (fault injection in tests). */
  wrapBlobs?: (blobs: BlobStore) => BlobStore;
  jumio?: Pick<UndiciJumioClientOptions, 'timeouts' | 'retry' | 'sleep'>;
  /** A controlled clock (lease expiry, schedules) instead of the system's. */
  clock?: Clock;
  /** Wraps the Jumio client (call counting, fault injection in tests). */
  wrapJumio?: (jumio: JumioApi) => JumioApi;
  authentications?: { backoff?: Backoff };
  notifications?: { backoff?: Backoff; timeouts?: WebhookTimeouts };
  /**
   * Aborts start-up (SIGTERM while starting): checked between steps, so a step that has
   * begun (opening the ledger, a migration) finishes and is closed, never left half-done.
   */
  signal?: AbortSignal;
}

/** The configured master key does not decrypt what the ledger holds. */
export class MasterKeyMismatchError extends VaultError {
  constructor(source: string, keyId: string, cause: unknown) {
    super(
      'master_key_mismatch',
      `${source}: this master key (key id ${keyId}) cannot decrypt the ledger's wrapped ` +
        'user-reference key (table vault_keys): the ledger was written under another master ' +
        'key. Restore the key this data directory or database was created with.',
      { cause },
    );
  }
}

/** The vault's own User-Agent towards the simulator (Jumio wants the business named). */
const SIMULATOR_USER_AGENT = 'FacemapVault Embedded/0.1.0';

/** Names the local key inside each ciphertext: changing it orphans existing blobs. */
export const LOCAL_KEY_NAMESPACE = 'facemap-vault';
export const LOCAL_KEY_NAME = 'local-master-key-v1';

/**
 * The ledger's database. `migration`: a one-connection pool as the migration role
 * (DATABASE_MIGRATION_URL, else DATABASE_URL) with the longer migration bound. Every wait
 * is bounded: connecting (and waiting for a pool slot), each statement on the server, each
 * answer on the client (a server that stops answering), a transaction left idle.
 */
export async function openDatabase(
  config: Pick<LedgerConfig, 'database'>,
  purpose: 'runtime' | 'migration' = 'runtime',
): Promise<SqlDatabase> {
  if (config.database.kind === 'postgres') {
    const { url, migrationUrl, poolMax, timeouts } = config.database;
    const migration = purpose === 'migration';
    const statementMs = migration ? timeouts.migrationMs : timeouts.statementMs;
    return new PgDatabase({
      connectionString: migration ? (migrationUrl ?? url) : url,
      max: migration ? 1 : poolMax,
      application_name: migration ? 'facemap-vault-migrate' : 'facemap-vault',
      connectionTimeoutMillis: timeouts.connectMs,
      statement_timeout: statementMs,
      // Past the server's own bound: normally the server cancels first and says why.
      query_timeout: migration ? timeouts.migrationMs + timeouts.queryMs : timeouts.queryMs,
      idle_in_transaction_session_timeout: timeouts.idleInTransactionMs,
      // Notices a peer that vanished without closing the connection.
      keepAlive: true,
    });
  }
  await mkdir(config.database.dataDir, { recursive: true, mode: 0o700 });
  return PgliteDatabase.open(config.database.dataDir);
}

/** A URL without user, password, query or fragment (for logs). */
function withoutSecrets(raw: string): string | null {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return null;
  }
}

/** Where each dependency lives, for readiness log lines: never a credential. */
export function dependencyTargets(config: VaultConfig): DependencyTargets {
  const db = config.database;
  const blobs = config.blobs;
  const envelope = config.envelope;
  return {
    ledger:
      db.kind === 'postgres'
        ? { kind: 'postgres', server: withoutSecrets(db.url) }
        : { kind: 'pglite', dataDir: db.dataDir },
    blobs:
      blobs.kind === 's3'
        ? {
            kind: 's3',
            bucket: blobs.bucket,
            prefix: blobs.prefix,
            endpoint: blobs.endpoint === undefined ? 'AWS' : withoutSecrets(blobs.endpoint),
            region: blobs.region ?? null,
          }
        : { kind: 'fs', root: blobs.root },
    envelope:
      envelope.kind === 'kms'
        ? { kind: 'kms', keyId: envelope.keyId, region: envelope.region ?? null }
        : { kind: 'local', keyFile: envelope.keyFile },
  };
}

const LOCAL_KEY_ID = `local:${LOCAL_KEY_NAMESPACE}/${LOCAL_KEY_NAME}`;

/** The setting (and file) an operator must look at for the configured master key. */
function masterKeySource(config: Pick<VaultConfig, 'envelope'>): string {
  return config.envelope.kind === 'kms'
    ? `KMS_KEY_ID (${config.envelope.keyId})`
    : `VAULT_LOCAL_KEY_FILE (${config.envelope.keyFile})`;
}

function describeHeld(held: HeldCiphertexts): string | undefined {
  const blobs = Object.entries(held.blobsByKeyId);
  if (held.vaultKeys === 0 && blobs.length === 0) return undefined;
  const parts = [
    ...(held.vaultKeys > 0 ? [`${held.vaultKeys} wrapped vault key(s)`] : []),
    ...blobs.map(([keyId, n]) => `${n} stored facemap(s) under key id ${keyId}`),
  ];
  return parts.join(', ');
}

/**
 * The ledger alone, for commands that need nothing else (the CLI). Applies pending
 * migrations (as the migration role) unless `migrate: false`; the caller closes `db`.
 */
export async function openLedger(
  config: Pick<LedgerConfig, 'database'>,
  options: { migrate?: boolean } = {},
): Promise<{ db: SqlDatabase; ledger: SqlLedger; applied: number[] }> {
  const db = await openDatabase(config, options.migrate !== false ? 'migration' : 'runtime');
  try {
    const applied = options.migrate !== false ? await migrate(db) : [];
    return { db, ledger: new SqlLedger(db), applied };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

/**
 * The envelope under the current key. `held`: what the ledger already holds, so that no
 * new local key is generated over it. `createLocalKey: false` (checks that must change
 * nothing) refuses a missing local key file instead of generating one.
 */
export async function buildEnvelope(
  config: Pick<VaultConfig, 'envelope' | 'facemapMaxBytes' | 'aws'>,
  logger: Logger,
  options: { held?: HeldCiphertexts; createLocalKey?: boolean } = {},
): Promise<Envelope> {
  const maxPlaintextBytes = config.facemapMaxBytes;
  if (config.envelope.kind === 'kms') {
    const client = createKmsClient({
      ...(config.envelope.region ? { region: config.envelope.region } : {}),
      timeouts: config.aws,
    });
    const keyId = config.envelope.keyId;
    return new EncryptionSdkEnvelope({
      keyring: kmsKeyring({ keyId, client }),
      keyId,
      maxPlaintextBytes,
    });
  }
  // A ledger that already holds ciphertexts needs the key they were written under: a new
  // one would decrypt none of them (and would be left behind as a trap).
  const inLedger = options.held && describeHeld(options.held);
  const masterKey =
    options.createLocalKey === false
      ? await loadLocalKey(config.envelope.keyFile)
      : await loadOrCreateLocalKey(
          config.envelope.keyFile,
          logger,
          inLedger === undefined
            ? {}
            : {
                mustExist:
                  `the ledger already holds data encrypted under key id ${LOCAL_KEY_ID} (${inLedger}). ` +
                  'Restore the key file this data directory was created with (or point ' +
                  'VAULT_LOCAL_KEY_FILE at it).',
              },
        );
  return new EncryptionSdkEnvelope({
    keyring: localKeyring({
      keyName: LOCAL_KEY_NAME,
      keyNamespace: LOCAL_KEY_NAMESPACE,
      masterKey,
    }),
    keyId: LOCAL_KEY_ID,
    maxPlaintextBytes,
  });
}

/** The audit digests' signing key: a key file (created 0600) or a KMS HMAC key. */
export async function buildAuditSigner(config: VaultConfig, logger: Logger): Promise<AuditSigner> {
  const signing = config.compliance.signing;
  if (signing.kind === 'kms') {
    return new KmsAuditSigner(
      createKmsClient({ region: signing.region, timeouts: config.aws }),
      signing.keyId,
    );
  }
  return FileAuditSigner.open(signing.keyFile, logger);
}

export function buildBlobStore(config: Pick<VaultConfig, 'blobs' | 'aws'>): BlobStore {
  const blobs = config.blobs;
  if (blobs.kind === 'fs') return new FsBlobStore(blobs.root);
  const client = createS3Client({
    region: blobs.region ?? 'us-east-1',
    endpoint: blobs.endpoint,
    forcePathStyle: blobs.forcePathStyle,
    timeouts: config.aws,
  });
  return new S3BlobStore({
    client,
    bucket: blobs.bucket,
    prefix: blobs.prefix,
    sseKmsKeyId: blobs.sseKmsKeyId,
  });
}

/** The client for a configured (remote) Jumio; the caller closes it. */
export function buildRemoteJumio(
  config: Extract<JumioConfig, { mode: 'remote' }>,
  facemapMaxBytes: number,
  overrides: ContainerOverrides['jumio'] = {},
): UndiciJumioClient {
  return new UndiciJumioClient({ ...config, facemapMaxBytes, ...overrides });
}

async function buildJumio(
  config: JumioConfig,
  facemapMaxBytes: number,
  requestDeadlineMs: number,
  logger: Logger,
  given: ContainerOverrides['jumio'] = {},
): Promise<{ jumio: UndiciJumioClient; simulator: RunningSimulator | undefined }> {
  const overrides = {
    ...given,
    timeouts: { ...DEFAULT_JUMIO_TIMEOUTS, totalMs: requestDeadlineMs, ...given.timeouts },
  };
  if (config.mode === 'remote') {
    return { jumio: buildRemoteJumio(config, facemapMaxBytes, overrides), simulator: undefined };
  }
  const simulator = await startSimulator({
    port: config.simulatorPort,
    logger: logger.child({ component: 'jumio-simulator' }),
  }).catch((error: unknown) => {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `JUMIO_SIMULATOR_PORT ${config.simulatorPort}: the embedded simulator cannot listen (${reason})`,
    );
  });
  logger.warn(
    { simulator: simulator.baseUrl, control: `${simulator.baseUrl}/__sim/` },
    'no Jumio configured: running the Jumio SIMULATOR in-process (embedded defaults, not for production)',
  );
  const credentials = {
    token: simulator.credentials.apiToken,
    secret: simulator.credentials.apiSecret,
  };
  return {
    jumio: new UndiciJumioClient({
      baseUrl: simulator.baseUrl,
      credentials,
      userAgent: SIMULATOR_USER_AGENT,
      facemapMaxBytes,
      ...overrides,
    }),
    simulator,
  };
}

/**
 * PGlite migrates through its one connection; PostgreSQL through a short-lived pool as
 * the migration role (or the runtime role when none is configured: that works only while
 * no migration is pending, and otherwise fails naming `npm run migrate`).
 */
async function migrateOnStart(
  config: Pick<LedgerConfig, 'database'>,
  db: SqlDatabase,
): Promise<number[]> {
  if (config.database.kind !== 'postgres') return migrate(db);
  const migrationDb = await openDatabase(config, 'migration');
  try {
    return await migrate(migrationDb);
  } finally {
    await migrationDb.close();
  }
}

/**
 * Pending migrations, then the audit entries written before the chain existed chained
 * once (the trigger lets only that update through, and only the migration role may).
 */
async function migrate(db: SqlDatabase): Promise<number[]> {
  const applied = await runMigrations(db);
  await new SqlLedger(db).transaction((tx) => tx.audit.sealUnchained());
  return applied;
}

export async function buildContainer(
  config: VaultConfig,
  logger: Logger,
  overrides: ContainerOverrides = {},
): Promise<Container> {
  const { signal } = overrides;
  signal?.throwIfAborted();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const metrics = new Metrics();
  const configuredBlobs = buildBlobStore(config);
  const blobs = instrumentBlobStore(
    overrides.wrapBlobs ? overrides.wrapBlobs(configuredBlobs) : configuredBlobs,
    metrics,
  );
  const apiKeys =
    config.apiKeys.length > 0
      ? config.apiKeys
      : [(await ensureAdminToken(config.dataDir, logger)).key];
  // Jumio first: a taken simulator port fails start-up before the ledger is opened.
  const built = await buildJumio(
    config.jumio,
    config.facemapMaxBytes,
    config.jumioRequestDeadlineMs,
    logger,
    overrides.jumio,
  );
  const { simulator } = built;
  const jumio = instrumentJumio(built.jumio, metrics);
  const closers: Array<() => Promise<void>> = [() => jumio.close()];
  if (simulator) closers.push(() => simulator.close());
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  };
  try {
    signal?.throwIfAborted();
    const db = await openDatabase(config);
    closers.push(() => db.close());
    signal?.throwIfAborted();
    const applied = await migrateOnStart(config, db);
    if (applied.length > 0) logger.info({ applied }, 'ledger migrations applied');
    // The envelope after the ledger: whether a key may be generated depends on its content.
    const envelope = instrumentEnvelope(
      await buildEnvelope(config, logger, { held: await heldCiphertexts(db) }),
      metrics,
    );
    const ledger = instrumentLedger(new SqlLedger(db), metrics);
    const hashUserReference = await loadUserReferenceHasher(ledger, envelope).catch(
      (error: unknown) => {
        if (!(error instanceof DecryptionError)) throw error;
        throw new MasterKeyMismatchError(masterKeySource(config), envelope.keyId, error);
      },
    );
    signal?.throwIfAborted();

    const clock = overrides.clock ?? systemClock;
    const intake = {
      userReferenceField: config.enrollment.userReferenceField,
      binding: config.enrollment.binding,
    };
    const stores = new BlobStores(blobs);
    const pipeline = new EnrollmentPipeline(
      { ledger, blobs: stores, envelope, jumio, clock, logger, hashUserReference },
      { ...intake, observe: metrics.workHooks.observe, ...overrides.pipeline },
    );
    const api = overrides.wrapJumio ? overrides.wrapJumio(jumio) : jumio;
    const timeouts = overrides.jumio?.timeouts ?? DEFAULT_JUMIO_TIMEOUTS;
    const auth = config.authentication;
    const authentications = new AuthenticationService(
      { ledger, blobs: stores, envelope, jumio: api, clock, logger, hashUserReference },
      {
        callbackUrl: `${auth.publicUrl}/webhooks/jumio`,
        maxPerUserPerHour: auth.maxPerUserPerHour,
        reconcileGraceMs: auth.reconcileGraceMs,
        deleteAtJumio: auth.deleteAtJumio,
        // Twice the longest an initiate can take at Jumio, plus a minute.
        initiationTtlMs: 2 * (timeouts.connectMs + timeouts.headersMs + timeouts.bodyMs) + 60_000,
        notifyDefaultUrl: config.notifications.defaultUrl,
        notifyAllowedOrigins: config.notifications.allowedOrigins,
      },
    );
    const authenticationWorker = new Worker(
      new AuthenticationJob(
        { jumio: api, clock, logger },
        { ...authentications.settings },
        overrides.authentications?.backoff,
      ),
      { ledger, clock, logger },
      { hooks: metrics.workHooks },
    );
    let sender: NotificationSender & { close?(): Promise<void> } = {
      // Without a secret no notification can be enqueued (the config requires one for a URL).
      send: () => Promise.reject(new Error('VAULT_NOTIFY_SECRET is not configured')),
    };
    if (config.notifications.secret) {
      const webhookSender = new UndiciNotificationSender(
        new StandardWebhooksSigner(config.notifications.secret),
        overrides.notifications?.timeouts,
      );
      closers.push(() => webhookSender.close());
      sender = webhookSender;
    }
    const notificationWorker = new Worker(
      new NotificationJob({ sender, clock, logger }, overrides.notifications?.backoff),
      { ledger, clock, logger },
      { hooks: metrics.workHooks },
    );
    const signer = await buildAuditSigner(config, logger);
    const cursors = await loadCursorCodec(ledger, envelope);
    const erasures = new ErasureService({
      ledger,
      blobs: stores,
      jumio: api,
      clock,
      logger,
      authentications: authentications.settings,
      hooks: metrics.workHooks,
    });
    const { retentionDays } = config.compliance;
    const auditTrail = { ledger, blobs: stores, signer, clock, logger };
    const scheduleJob = new ScheduleJob(
      [
        new IdempotencyKeyPurge({ ledger }),
        new AuditDigestTask(auditTrail, config.compliance.digestIntervalMs),
        new RetentionPurge(
          { ledger, erasures, clock, logger, retentionDays },
          config.compliance.purgeIntervalMs,
        ),
        new OrphanSweep(
          { ledger, blobs: stores, clock, logger },
          {
            intervalMs: config.workers.orphanSweepIntervalMs,
            graceMs: config.workers.orphanSweepGraceMs,
          },
        ),
      ],
      { ledger, clock },
    );
    await scheduleJob.ensureScheduled();
    const schedules = new Worker(
      scheduleJob,
      { ledger, clock, logger },
      { hooks: metrics.workHooks },
    );
    metrics.observeLedger(ledger, () => clock.now());
    let loops: Loop[] = [];
    const denials = new DenialAggregator(
      { ledger, clock, logger },
      { intervalMs: config.audit.denialIntervalMs },
    );
    denials.start();
    if (typeof config.trustProxy === 'number') {
      logger.warn(
        { trustProxy: config.trustProxy },
        'TRUST_PROXY is a hop count: anyone who reaches the vault directly (not through the ' +
          'proxies) can choose the address it sees via X-Forwarded-For. Set TRUST_PROXY to ' +
          "the proxies' addresses or CIDRs instead",
      );
    }
    logger.info(
      {
        ledger: db.kind,
        blobs: config.blobs.kind,
        envelope: config.envelope.kind,
        keyId: envelope.keyId,
        jumio: config.jumio.mode === 'remote' ? config.jumio.baseUrl : 'embedded simulator',
        binding: intake.binding,
      },
      'vault composed',
    );
    return {
      ledger,
      blobs,
      envelope,
      logger,
      clock,
      metrics,
      intake,
      apiKeys,
      callbackAllowlist: new CidrAllowlist(config.callbackAllowedCidrs),
      trustProxy: config.trustProxy,
      compliance: { stores, signer, cursors, erasures, retentionDays },
      denials,
      readinessCacheMs: config.readinessCacheMs,
      dependencies: dependencyTargets(config),
      jumio,
      pipeline,
      schedules,
      authenticationWorker,
      notificationWorker,
      authentications,
      notifications: new NotificationAdmin({ ledger, clock }),
      erasures,
      simulator,
      startWorkers() {
        const idleMs = config.enrollment.workerIntervalMs;
        loops = [
          ...Array.from({ length: config.workers.concurrency }, (_, i) =>
            startLoop(`enrollment-pipeline-${i}`, () => pipeline.runOnce(), idleMs, logger),
          ),
          startLoop('schedules', () => schedules.runOnce(), idleMs, logger),
          ...Array.from({ length: config.workers.concurrency }, (_, i) => [
            startLoop(`authentications-${i}`, () => authenticationWorker.runOnce(), idleMs, logger),
            startLoop(`notifications-${i}`, () => notificationWorker.runOnce(), idleMs, logger),
          ]).flat(),
          startLoop('erasures', () => erasures.runOnce(), idleMs, logger),
        ];
      },
      async close() {
        await Promise.all(loops.map((loop) => loop.stop()));
        // The last interval's denial counts, while the ledger is still open.
        await denials.close();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
