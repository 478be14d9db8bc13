import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../src/adapters/blobs/s3-blob-store';
import { type RunningS3rver, startS3rver } from '../helpers/s3rver';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';

/**
 * The composition root with BLOB_STORE=s3: configuration alone moves the facemaps to an
 * S3-compatible store (s3rver here), and the pipeline's write, read-back, sweep and
 * destroy work there as on the filesystem.
 */
describe('enrollment with BLOB_STORE=s3', () => {
  let s3: RunningS3rver;
  let sim: SimulatorClient;
  let vault: TestVault;
  let ledger: LedgerChoice;
  const [, chooseLedger] =
    vaultLedgerKinds.find(([name]) => name === 'pglite') ?? vaultLedgerKinds[0]!;

  beforeAll(async () => {
    s3 = await startS3rver();
    sim = await startTestSimulator();
    // The SDK's default credential chain reads these; s3rver accepts its fixed pair.
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger, {
      env: {
        BLOB_STORE: 's3',
        S3_BUCKET: s3.bucket,
        S3_PREFIX: 'vault-it',
        S3_ENDPOINT: s3.endpoint,
        S3_FORCE_PATH_STYLE: 'true',
        AWS_REGION: 'us-east-1',
      },
    });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await s3?.close();
    await removeDir(vault.dataDir);
  });

  async function settle(ref: string) {
    for (let i = 0; i < 200; i++) {
      await vault.container.pipeline.runOnce();
      const e = await vault.container.ledger.transaction((tx) => tx.enrollments.get(ref));
      if (e?.state === 'ACTIVE' || (e?.state === 'SUPERSEDED' && e.blobDestroyedAt)) return e;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${ref} did not settle`);
  }

  const objectsInBucket = async () =>
    (await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket }))).Contents?.map(
      (o) => o.Key,
    ) ?? [];

  it('stores the facemap in the bucket under the prefix, and destroys it when superseded', async () => {
    expect(vault.container.blobs).toBeInstanceOf(S3BlobStore);
    const first = await sim.createScan({ customerId: 'user-s3' });
    await sim.sendCallback(first.scanReference, `${vault.url}/webhooks/jumio`);
    const active = await settle(first.scanReference);
    expect(active.state).toBe('ACTIVE');
    expect(await objectsInBucket()).toEqual([`vault-it/${active.blobKey}`]);
    const stored = Buffer.from(await vault.container.blobs.get(active.blobKey!));
    expect(stored.includes(Buffer.from(first.facemapBase64, 'base64').subarray(0, 64))).toBe(false);

    const second = await sim.createScan({ customerId: 'user-s3' });
    await sim.sendCallback(second.scanReference, `${vault.url}/webhooks/jumio`);
    const next = await settle(second.scanReference);
    expect((await settle(first.scanReference)).state).toBe('SUPERSEDED');
    expect(await objectsInBucket()).toEqual([`vault-it/${next.blobKey}`]);
  });
});
