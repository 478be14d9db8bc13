import { mkdir } from 'node:fs/promises';
import { FsBlobStore } from './adapters/blobs/fs-blob-store';
import { createS3Client, S3BlobStore } from './adapters/blobs/s3-blob-store';
import { MultiKeyringNode } from '@aws-crypto/client-node';
import type { KMSClient } from '@aws-sdk/client-kms';
import { type DecryptKey, EncryptionSdkEnvelope } from './adapters/crypto/encryption-sdk-envelope';
import {
  createKmsClient,
  kmsDecryptKeyring,
  kmsKeyring,
  LEGACY_LOCAL_KEY_NAME,
  LOCAL_KEY_NAMESPACE,
  localKeyId,
  localKeyName,
  localKeyring,
} from './adapters/crypto/keyrings';
import { kmsKeyRegion } from './adapters/crypto/kms-arn';
import { LocalKeyError, loadLocalKey, loadOrCreateLocalKey } from './adapters/crypto/local-key';
import { migrate, openDatabase } from './adapters/ledger/open';
import {
  instrumentBlobStore,
  instrumentEnvelope,
  instrumentJumio,
  instrumentLedger,
  Metrics,
} from './adapters/metrics';
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
import { loadUserReferenceHasher, type UserReferenceHasher } from './core/enrollment/context';
import { DecryptionError, VaultError } from './core/errors';
import { BlobStores } from './core/blobs';
import { OrphanSweep } from './core/enrollment/orphans';
import { IntakeBatcher } from './core/enrollment/intake';
import { ensureKeyProbe, recordVaultKeyIds } from './core/keys/vault-keys';
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
  type Ledger,
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
  /** Wraps the ledger (holding commits back in tests). */
  wrapLedger?: (ledger: Ledger) => Ledger;
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

/** Neither the configured master key nor a previous one decrypts what the ledger holds. */
export class MasterKeyMismatchError extends VaultError {
  constructor(
    source: string,
    envelope: Pick<Envelope, 'keyId' | 'previousKeyIds'>,
    held: HeldCiphertexts | undefined,
    cause: unknown,
  ) {
    const previous = envelope.previousKeyIds.length
      ? `, nor can the previous keys (${envelope.previousKeyIds.join(', ')})`
      : '';
    const wrapped = held && describeHeld({ ...held, blobsByKeyId: {} });
    super(
      'master_key_mismatch',
      `${source}: this master key (key id ${envelope.keyId}) cannot decrypt the ledger's ` +
        `wrapped user-reference key${previous} (table vault_keys${wrapped ? `: ${wrapped}` : ''}): ` +
        'the ledger was written under another master key. Restore the key this data ' +
        'directory or database was created with (while rotating keys, as a previous key: ' +
        'KMS_PREVIOUS_KEY_IDS or VAULT_LOCAL_PREVIOUS_KEY_FILES).',
      { cause },
    );
  }
}

/** The vault's own User-Agent towards the simulator (Jumio wants the business named). */
const SIMULATOR_USER_AGENT = 'FacemapVault Embedded/0.1.0';

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

/** The setting (and file) an operator must look at for the configured master key. */
function masterKeySource(config: Pick<VaultConfig, 'envelope'>): string {
  return config.envelope.kind === 'kms'
    ? `KMS_KEY_ID (${config.envelope.keyId})`
    : `VAULT_LOCAL_KEY_FILE (${config.envelope.keyFile})`;
}

function describeHeld(held: HeldCiphertexts): string | undefined {
  const parts = [
    ...Object.entries(held.vaultKeysByKeyId).map(
      ([keyId, n]) => `${n} wrapped vault key(s) under key id ${keyId}`,
    ),
    ...Object.entries(held.blobsByKeyId).map(
      ([keyId, n]) => `${n} stored facemap(s) under key id ${keyId}`,
    ),
  ];
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/**
 * The envelope: encrypts under the current key, decrypts under it and the previous keys
 * (rotation). `held`: what the ledger already holds, so that no new local key is generated
 * over it. `createLocalKey: false` (checks that must change nothing) refuses a missing
 * local key file instead of generating one. A previous key file is never generated.
 */
export async function buildEnvelope(
  config: Pick<VaultConfig, 'envelope' | 'facemapMaxBytes' | 'aws'>,
  logger: Logger,
  options: { held?: HeldCiphertexts; createLocalKey?: boolean } = {},
): Promise<EncryptionSdkEnvelope> {
  const { envelope: keys } = config;
  // One KMS client per region: a previous key may live in another region than the current.
  const clients = new Map<string, KMSClient>();
  const kmsClient = (region: string | undefined) => {
    const key = region ?? '';
    if (!clients.has(key)) {
      clients.set(key, createKmsClient({ ...(region ? { region } : {}), timeouts: config.aws }));
    }
    return clients.get(key)!;
  };
  const localKeys: Array<{ setting: string; file: string; key: Uint8Array }> = [];
  try {
    for (const file of keys.previous.localKeyFiles) {
      const setting = 'VAULT_LOCAL_PREVIOUS_KEY_FILES';
      localKeys.push({ setting, file, key: await loadLocalKey(file, setting) });
    }
    let current: DecryptKey;
    if (keys.kind === 'kms') {
      current = {
        keyId: keys.keyId,
        keyring: kmsKeyring({ keyId: keys.keyId, client: kmsClient(keys.region) }),
      };
    } else {
      // A ledger that already holds ciphertexts needs the key they were written under: a
      // new one would decrypt none of them (and would be left behind as a trap).
      const inLedger = options.held && describeHeld(options.held);
      const masterKey =
        options.createLocalKey === false
          ? await loadLocalKey(keys.keyFile)
          : await loadOrCreateLocalKey(
              keys.keyFile,
              logger,
              inLedger === undefined
                ? {}
                : {
                    mustExist:
                      `the ledger already holds encrypted data (${inLedger}). Restore the key ` +
                      'file this data directory was created with (or point ' +
                      'VAULT_LOCAL_KEY_FILE at it). To rotate to a new local key, create it ' +
                      'yourself and list the old one in VAULT_LOCAL_PREVIOUS_KEY_FILES.',
                  },
            );
      localKeys.unshift({ setting: 'VAULT_LOCAL_KEY_FILE', file: keys.keyFile, key: masterKey });
      current = localDecryptKey(masterKey);
    }
    const decryptKeys: DecryptKey[] = [current];
    for (const keyId of keys.previous.kmsKeyIds) {
      const client = kmsClient(kmsKeyRegion(keyId));
      decryptKeys.push({ keyId, keyring: kmsDecryptKeyring({ keyId, client }) });
    }
    for (const local of localKeys) {
      const key = localDecryptKey(local.key);
      const twin = decryptKeys.find((k) => k.keyId === key.keyId);
      if (twin === current && local.setting === 'VAULT_LOCAL_KEY_FILE') continue;
      if (twin) {
        throw new LocalKeyError(
          local.file,
          `holds the same key as another configured key file (key id ${key.keyId})`,
          { setting: local.setting },
        );
      }
      decryptKeys.push(key);
    }
    if (localKeys.length > 0) {
      // What older versions wrote carries one shared name, whichever local key wrote it.
      decryptKeys.push({
        keyId: localKeyId(LEGACY_LOCAL_KEY_NAME),
        keyring: new MultiKeyringNode({
          children: localKeys.map((k) => localKeyringFor(k.key, LEGACY_LOCAL_KEY_NAME)),
        }),
      });
    }
    const currentKeyring =
      keys.kind === 'kms' ? current.keyring : localKeyringFor(localKeys[0]!.key);
    return new EncryptionSdkEnvelope({
      keyring: currentKeyring,
      keyId: current.keyId,
      decryptKeys,
      maxPlaintextBytes: config.facemapMaxBytes,
    });
  } finally {
    // The keyrings hold their own copies.
    for (const k of localKeys) k.key.fill(0);
  }
}

function localKeyringFor(masterKey: Uint8Array, keyName = localKeyName(masterKey)) {
  return localKeyring({ keyName, keyNamespace: LOCAL_KEY_NAMESPACE, masterKey });
}

/** A local key under its own name (derived from the key). */
function localDecryptKey(masterKey: Uint8Array): DecryptKey {
  const keyName = localKeyName(masterKey);
  return { keyId: localKeyId(keyName), keyring: localKeyringFor(masterKey, keyName) };
}

/**
 * The user-reference hasher (its key is wrapped in the ledger): a master key that cannot
 * unwrap it is MasterKeyMismatchError, naming the setting to look at.
 */
export function openUserReferenceHasher(
  config: Pick<VaultConfig, 'envelope'>,
  ledger: Ledger,
  envelope: Envelope,
  held?: HeldCiphertexts,
): Promise<UserReferenceHasher> {
  return loadUserReferenceHasher(ledger, envelope).catch((error: unknown) => {
    if (!(error instanceof DecryptionError)) throw error;
    throw new MasterKeyMismatchError(masterKeySource(config), envelope, held, error);
  });
}

/** Facemaps under a key this vault does not have cannot be read: say so at start-up. */
function warnUnconfiguredKeys(
  held: HeldCiphertexts,
  envelope: Pick<Envelope, 'keyId' | 'previousKeyIds'>,
  logger: Logger,
): void {
  const known = new Set([envelope.keyId, ...envelope.previousKeyIds]);
  for (const [keyId, facemaps] of Object.entries(held.blobsByKeyId)) {
    if (known.has(keyId)) continue;
    logger.warn(
      { keyId, facemaps },
      'stored facemaps are wrapped by a key this vault is not configured with: they cannot ' +
        'be decrypted. Add the key to KMS_PREVIOUS_KEY_IDS or VAULT_LOCAL_PREVIOUS_KEY_FILES',
    );
  }
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
    const held = await heldCiphertexts(db);
    const envelope = instrumentEnvelope(await buildEnvelope(config, logger, { held }), metrics);
    warnUnconfiguredKeys(held, envelope, logger);
    const sqlLedger = new SqlLedger(db);
    const ledger = instrumentLedger(
      overrides.wrapLedger ? overrides.wrapLedger(sqlLedger) : sqlLedger,
      metrics,
    );
    const hashUserReference = await openUserReferenceHasher(config, ledger, envelope, held);
    // Proof, for `vault doctor` once this key is a previous one, that it still decrypts.
    await ensureKeyProbe(ledger, envelope);
    await recordVaultKeyIds(ledger, envelope);
    signal?.throwIfAborted();

    const clock = overrides.clock ?? systemClock;
    const intake = {
      userReferenceField: config.enrollment.userReferenceField,
      binding: config.enrollment.binding,
    };
    const callbackBatch = {
      ...config.callbackBatch,
      // PGlite runs one transaction at a time; a pool overlaps a few groups' round trips
      // and leaves connections to the workers and the API.
      concurrency:
        config.database.kind === 'postgres'
          ? Math.max(1, Math.min(4, Math.floor(config.database.poolMax / 2)))
          : 1,
    };
    const stores = new BlobStores(blobs);
    const pipeline = new EnrollmentPipeline(
      { ledger, blobs: stores, envelope, jumio, clock, logger, hashUserReference },
      {
        ...intake,
        observe: metrics.workHooks.observe,
        leaseMs: config.workers.leaseMs,
        ...overrides.pipeline,
      },
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
      { hooks: metrics.workHooks, leaseMs: config.workers.leaseMs },
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
      { hooks: metrics.workHooks, leaseMs: config.workers.leaseMs },
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
      leaseMs: config.workers.leaseMs,
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
      { hooks: metrics.workHooks, leaseMs: config.workers.leaseMs },
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
      callbackBatch,
      callbackIntake: new IntakeBatcher({ ledger, clock }, intake, callbackBatch),
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
