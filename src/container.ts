import { mkdir } from 'node:fs/promises';
import { KMSClient } from '@aws-sdk/client-kms';
import { FsBlobStore } from './adapters/blobs/fs-blob-store';
import { createS3Client, S3BlobStore } from './adapters/blobs/s3-blob-store';
import { EncryptionSdkEnvelope } from './adapters/crypto/encryption-sdk-envelope';
import { kmsKeyring, localKeyring } from './adapters/crypto/keyrings';
import { loadOrCreateLocalKey } from './adapters/crypto/local-key';
import { runMigrations } from './adapters/ledger/migrations';
import { PgDatabase } from './adapters/ledger/pg-database';
import { PgliteDatabase } from './adapters/ledger/pglite-database';
import type { SqlDatabase } from './adapters/ledger/sql';
import { SqlLedger } from './adapters/ledger/sql-ledger';
import type { VaultConfig } from './config';
import type { BlobStore, Envelope, Ledger, Logger } from './core/ports';

/** The only place adapters are constructed: everything else receives ports. */
export interface Container {
  ledger: Ledger;
  blobs: BlobStore;
  envelope: Envelope;
  logger: Logger;
  /** Closes pools and handles; safe to call once at shutdown. */
  close(): Promise<void>;
}

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

function buildBlobStore(config: VaultConfig): BlobStore {
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

export async function buildContainer(config: VaultConfig, logger: Logger): Promise<Container> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const envelope = await buildEnvelope(config, logger);
  const blobs = buildBlobStore(config);
  const db = await openDatabase(config);
  try {
    const applied = await runMigrations(db);
    if (applied.length > 0) logger.info({ applied }, 'ledger migrations applied');
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
  const ledger = new SqlLedger(db);
  logger.info(
    {
      ledger: db.kind,
      blobs: config.blobs.kind,
      envelope: config.envelope.kind,
      keyId: envelope.keyId,
    },
    'vault composed',
  );
  return {
    ledger,
    blobs,
    envelope,
    logger,
    close: () => ledger.close(),
  };
}
