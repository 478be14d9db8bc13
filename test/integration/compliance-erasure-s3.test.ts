import { ListObjectsV2Command } from '@aws-sdk/client-s3';
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
import { api, onboardActive } from '../helpers/compliance';

/**
 * Erasure with BLOB_STORE=s3 (s3rver): every object of the user's enrollments leaves the
 * bucket, and the receipt lists them. s3rver 3.7 implements no bucket versioning (its
 * ?versioning and ?versions answer NotImplemented), so the deletion of every version and
 * delete marker on a versioned bucket is proven against the S3 API in
 * test/unit/s3-blob-store.test.ts; the erasure uses that same delete.
 */
describe('erasure with BLOB_STORE=s3', () => {
  let s3: RunningS3rver;
  let sim: SimulatorClient;
  let vault: TestVault;
  let ledger: LedgerChoice;
  const [, chooseLedger] =
    vaultLedgerKinds.find(([name]) => name === 'pglite') ?? vaultLedgerKinds[0]!;

  beforeAll(async () => {
    s3 = await startS3rver();
    sim = await startTestSimulator();
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger, {
      env: {
        BLOB_STORE: 's3',
        S3_BUCKET: s3.bucket,
        S3_PREFIX: 'erasure-it',
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

  const objects = async (prefix: string) =>
    (
      await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))
    ).Contents?.map((o) => o.Key) ?? [];

  it('removes every object of the user from the bucket and keeps the receipt', async () => {
    const kept = await onboardActive(vault, 'user-s3-kept');
    const gone = await onboardActive(vault, 'user-s3-erased');
    const stray = `facemaps/${gone.scanReference}/earlier-attempt.bin`;
    await vault.container.blobs.put(stray, new Uint8Array([9]));
    expect(await objects(`erasure-it/facemaps/${gone.scanReference}/`)).toHaveLength(2);

    const res = await api(vault)
      .delete('/v1/enrollments/user-s3-erased', { reason: 'consent_withdrawn' })
      .expect(200);
    expect(res.body.blobKeysDestroyed).toEqual([gone.record.blobKey, stray].sort());
    expect(await objects(`erasure-it/facemaps/${gone.scanReference}/`)).toEqual([]);
    // The other user's facemap is untouched.
    expect(await objects(`erasure-it/facemaps/${kept.scanReference}/`)).toEqual([
      `erasure-it/${kept.record.blobKey}`,
    ]);
    // The digest goes to the same bucket, under audit-digests/.
    await api(vault).post('/v1/audit/digests').expect(201);
    expect((await objects('erasure-it/audit-digests/')).length).toBe(1);
    expect((await api(vault, 'auditor').get('/v1/audit/verify').expect(200)).body.ok).toBe(true);
  });
});
