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
    vault = await startTestVault(sim, ledger, { env: s3Env() });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await s3?.close();
    await removeDir(vault.dataDir);
  });

  const s3Env = () => ({
    BLOB_STORE: 's3',
    S3_BUCKET: s3.bucket,
    S3_PREFIX: 'vault-it',
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
  });

  async function settle(
    ref: string,
    v: TestVault = vault,
    until = (e: { state: string; blobDestroyedAt: Date | null }) =>
      e.state === 'ACTIVE' || (e.state === 'SUPERSEDED' && e.blobDestroyedAt !== null),
  ) {
    for (let i = 0; i < 200; i++) {
      await v.container.pipeline.runOnce();
      const e = await v.container.ledger.transaction((tx) => tx.enrollments.get(ref));
      if (e && until(e)) return e;
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

  it('destroys a blob only through the store that holds it, and never audits a destruction that did not happen', async () => {
    const own = await chooseLedger();
    const onFs = await startTestVault(sim, own);
    const dataDir = onFs.dataDir;
    let onS3: TestVault | undefined;
    let backOnFs: TestVault | undefined;
    try {
      const first = await sim.createScan({ customerId: 'user-moved' });
      await sim.sendCallback(first.scanReference, `${onFs.url}/webhooks/jumio`);
      const fsActive = await settle(first.scanReference, onFs);
      expect(fsActive.blobStore).toBe(onFs.container.blobs.location);
      expect(fsActive.blobStore).toMatch(/^file:\/\//);
      await onFs.stop();

      // The same ledger, now configured with S3: the user enrols again.
      onS3 = await startTestVault(sim, own, { env: s3Env() }, dataDir);
      const second = await sim.createScan({ customerId: 'user-moved' });
      await sim.sendCallback(second.scanReference, `${onS3.url}/webhooks/jumio`);
      const s3Active = await settle(second.scanReference, onS3);
      expect(s3Active.blobStore).toBe(`s3://${s3.bucket}/vault-it/`);
      const refused = await settle(first.scanReference, onS3, (e) => e.state === 'SUPERSEDED');
      for (let i = 0; i < 5; i++) await onS3.container.pipeline.runOnce();
      const stuck = await onS3.container.ledger.transaction((tx) =>
        tx.enrollments.get(first.scanReference),
      );
      expect(stuck).toMatchObject({ state: 'SUPERSEDED', blobDestroyedAt: null });
      expect(stuck!.lastError).toMatch(/^blob_store_unavailable/);
      expect(refused.blobKey).toBe(fsActive.blobKey);
      const listed = async (v: TestVault) =>
        (
          await v.container.ledger.transaction((tx) =>
            tx.audit.list({ enrollmentReference: first.scanReference, limit: 100 }),
          )
        ).map((a) => a.type);
      let types = await listed(onS3);
      expect(types).not.toContain('facemap.destroyed');
      expect(types.filter((t) => t === 'facemap.destroy_refused')).toHaveLength(1);
      await onS3.stop();
      onS3 = undefined;

      // Back on the filesystem store that holds it (and still holds the blob): now it is
      // destroyed, and audited.
      backOnFs = await startTestVault(sim, own, {}, dataDir);
      expect(await backOnFs.container.blobs.exists(fsActive.blobKey!)).toBe(true);
      const destroyed = await settle(first.scanReference, backOnFs);
      expect(destroyed.blobDestroyedAt).not.toBeNull();
      expect(await backOnFs.container.blobs.exists(fsActive.blobKey!)).toBe(false);
      types = await listed(backOnFs);
      expect(types.filter((t) => t === 'facemap.destroyed')).toHaveLength(1);
    } finally {
      await onS3?.stop();
      await backOnFs?.stop();
      await own.dispose();
      await removeDir(dataDir);
    }
  });
});
