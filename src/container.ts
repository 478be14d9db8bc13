import { mkdir } from 'node:fs/promises';
import { KMSClient } from '@aws-sdk/client-kms';
import { FsBlobStore } from './adapters/blobs/fs-blob-store';
import { createS3Client, S3BlobStore } from './adapters/blobs/s3-blob-store';
import { EncryptionSdkEnvelope } from './adapters/crypto/encryption-sdk-envelope';
import { kmsKeyring, localKeyring } from './adapters/crypto/keyrings';
import { loadOrCreateLocalKey } from './adapters/crypto/local-key';
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
import { SqlLedger } from './adapters/ledger/sql-ledger';
import {
  UndiciJumioClient,
  type UndiciJumioClientOptions,
} from './adapters/jumio/undici-jumio-client';
import type { AppDeps, DependencyTargets } from './app';
import type { JumioConfig, VaultConfig } from './config';
import { DenialAggregator } from './core/denials';
import { loadUserReferenceHasher } from './core/enrollment/context';
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
  systemClock,
} from './core/ports';
import { Worker } from './core/work';
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
  /** The `erasures` queue (erasure on request and by retention); tests step it. */
  erasures: ErasureService;
  /** The in-process Jumio simulator on embedded defaults. */
  simulator: RunningSimulator | undefined;
  /** Starts the background workers (main.ts; tests drive the pipeline themselves). */
  startWorkers(): void;
  /** Stops workers, then closes pools and handles; call once at shutdown. */
  close(): Promise<void>;
}

/** Overrides for tests: pipeline hooks and retry schedules, an extra logger binding. */
export interface ContainerOverrides {
  pipeline?: Partial<PipelineOptions>;
  /** Wraps the configured blob store (fault injection in tests). */
  wrapBlobs?: (blobs: BlobStore) => BlobStore;
  jumio?: Pick<UndiciJumioClientOptions, 'timeouts' | 'retry' | 'sleep'>;
  /** A controlled clock (lease expiry, schedules) instead of the system's. */
  clock?: Clock;
}

/** The vault's own User-Agent towards the simulator (Jumio wants the business named). */
const SIMULATOR_USER_AGENT = 'FacemapVault Embedded/0.1.0';

/** Names the local key inside each ciphertext: changing it orphans existing blobs. */
export const LOCAL_KEY_NAMESPACE = 'facemap-vault';
export const LOCAL_KEY_NAME = 'local-master-key-v1';

export async function openDatabase(config: VaultConfig): Promise<SqlDatabase> {
  if (config.database.kind === 'postgres') {
    return new PgDatabase({ connectionString: config.database.url, max: config.database.poolMax });
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

async function buildEnvelope(config: VaultConfig, logger: Logger): Promise<Envelope> {
  const maxPlaintextBytes = config.facemapMaxBytes;
  if (config.envelope.kind === 'kms') {
    const client = new KMSClient(config.envelope.region ? { region: config.envelope.region } : {});
    const keyId = config.envelope.keyId;
    return new EncryptionSdkEnvelope({
      keyring: kmsKeyring({ keyId, client }),
      keyId,
      maxPlaintextBytes,
    });
  }
  const masterKey = await loadOrCreateLocalKey(config.envelope.keyFile, logger);
  return new EncryptionSdkEnvelope({
    keyring: localKeyring({
      keyName: LOCAL_KEY_NAME,
      keyNamespace: LOCAL_KEY_NAMESPACE,
      masterKey,
    }),
    keyId: `local:${LOCAL_KEY_NAMESPACE}/${LOCAL_KEY_NAME}`,
    maxPlaintextBytes,
  });
}

/** The audit digests' signing key: a key file (created 0600) or a KMS HMAC key. */
export async function buildAuditSigner(config: VaultConfig, logger: Logger): Promise<AuditSigner> {
  const signing = config.compliance.signing;
  if (signing.kind === 'kms') {
    return new KmsAuditSigner(new KMSClient({ region: signing.region }), signing.keyId);
  }
  return FileAuditSigner.open(signing.keyFile, logger);
}

export function buildBlobStore(config: VaultConfig): BlobStore {
  const blobs = config.blobs;
  if (blobs.kind === 'fs') return new FsBlobStore(blobs.root);
  const client = createS3Client({
    region: blobs.region ?? 'us-east-1',
    endpoint: blobs.endpoint,
    forcePathStyle: blobs.forcePathStyle,
  });
  return new S3BlobStore({
    client,
    bucket: blobs.bucket,
    prefix: blobs.prefix,
    sseKmsKeyId: blobs.sseKmsKeyId,
  });
}

async function buildJumio(
  config: JumioConfig,
  facemapMaxBytes: number,
  logger: Logger,
  overrides: ContainerOverrides['jumio'] = {},
): Promise<{ jumio: UndiciJumioClient; simulator: RunningSimulator | undefined }> {
  if (config.mode === 'remote') {
    return {
      jumio: new UndiciJumioClient({ ...config, facemapMaxBytes, ...overrides }),
      simulator: undefined,
    };
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

export async function buildContainer(
  config: VaultConfig,
  logger: Logger,
  overrides: ContainerOverrides = {},
): Promise<Container> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const metrics = new Metrics();
  const envelope = instrumentEnvelope(await buildEnvelope(config, logger), metrics);
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
  const built = await buildJumio(config.jumio, config.facemapMaxBytes, logger, overrides.jumio);
  const { simulator } = built;
  const jumio = instrumentJumio(built.jumio, metrics);
  const closers: Array<() => Promise<void>> = [() => jumio.close()];
  if (simulator) closers.push(() => simulator.close());
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  };
  try {
    const db = await openDatabase(config);
    closers.push(() => db.close());
    const applied = await runMigrations(db);
    if (applied.length > 0) logger.info({ applied }, 'ledger migrations applied');
    const ledger = instrumentLedger(new SqlLedger(db), metrics);
    // Entries written before the chain existed are chained once, in id order.
    const sealed = await ledger.transaction((tx) => tx.audit.sealUnchained());
    if (sealed > 0) logger.info({ sealed }, 'audit entries from before the chain were chained');
    const hashUserReference = await loadUserReferenceHasher(ledger, envelope);

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
    const signer = await buildAuditSigner(config, logger);
    const cursors = await loadCursorCodec(ledger, envelope);
    const erasures = new ErasureService({ ledger, blobs: stores, jumio, clock, logger });
    const { retentionDays } = config.compliance;
    const auditTrail = { ledger, blobs: stores, signer, clock, logger };
    const scheduleJob = new ScheduleJob(
      [
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
      erasures,
      simulator,
      startWorkers() {
        const idleMs = config.enrollment.workerIntervalMs;
        loops = [
          ...Array.from({ length: config.workers.concurrency }, (_, i) =>
            startLoop(`enrollment-pipeline-${i}`, () => pipeline.runOnce(), idleMs, logger),
          ),
          startLoop('schedules', () => schedules.runOnce(), idleMs, logger),
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
