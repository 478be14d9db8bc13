import { createHash } from 'node:crypto';
import { facemapContext, loadUserReferenceHasher } from '../../src/core/enrollment/context';
import { EncryptionContextMismatchError } from '../../src/core/errors';
import type { EnrollmentRecord } from '../../src/core/ports';
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
 * Invariant 6 end to end: a blob the vault stored decrypts, through the vault's own
 * envelope, only with its owner's context; another user's context, or the blob copied
 * onto another user's record, is refused.
 */
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe.each(vaultLedgerKinds)('stored facemaps are bound to their owner on %s', (_n, choose) => {
  let sim: SimulatorClient;
  let ledgerChoice: LedgerChoice;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledgerChoice = await choose();
    vault = await startTestVault(sim, ledgerChoice);
  });
  afterAll(async () => {
    await vault?.stop();
    await ledgerChoice?.dispose();
    await sim?.running.close();
    if (vault) await removeDir(vault.dataDir);
  });

  /** Onboards `user` through the simulator and runs the pipeline until ACTIVE. */
  async function enrol(user: string): Promise<{ record: EnrollmentRecord; facemapSha256: string }> {
    const scan = await sim.createScan({ customerId: user });
    const delivered = await sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`);
    expect(delivered.status).toBe(200);
    for (let i = 0; i < 100; i++) {
      await vault.container.pipeline.runOnce();
      const record = await vault.container.ledger.transaction((tx) =>
        tx.enrollments.get(scan.scanReference),
      );
      if (record?.state === 'ACTIVE') return { record, facemapSha256: scan.facemapSha256 };
    }
    throw new Error(`enrollment ${scan.scanReference} did not become ACTIVE`);
  }

  it('decrypts each blob with its owner context only, and refuses a blob moved to another user', async () => {
    const alice = await enrol('user-alice-7');
    const bob = await enrol('user-bob-7');
    expect(alice.facemapSha256).not.toBe(bob.facemapSha256);
    // The vault's own envelope and its own user-reference hasher (from the ledger's key).
    const { envelope, blobs, ledger } = vault.container;
    const hash = await loadUserReferenceHasher(ledger, envelope);
    const contextOf = (r: EnrollmentRecord) =>
      facemapContext(r.enrollmentReference, r.userReference!, hash);

    for (const { record, facemapSha256 } of [alice, bob]) {
      const stored = await blobs.get(record.blobKey!);
      expect(sha256(stored)).not.toBe(facemapSha256);
      const plaintext = await envelope.decrypt(stored, contextOf(record));
      expect(sha256(plaintext)).toBe(facemapSha256);
    }

    // Alice's blob with Bob's context: refused, naming the keys that differ.
    const aliceBlob = await blobs.get(alice.record.blobKey!);
    const crossed = await envelope.decrypt(aliceBlob, contextOf(bob.record)).catch((e) => e);
    expect(crossed).toBeInstanceOf(EncryptionContextMismatchError);
    expect((crossed as EncryptionContextMismatchError).keys).toEqual(['enrollment', 'user']);

    // Alice's blob copied onto Bob's key path: reading Bob's facemap is refused.
    const bobBlob = await blobs.get(bob.record.blobKey!);
    await blobs.put(bob.record.blobKey!, aliceBlob);
    try {
      const moved = await blobs.get(bob.record.blobKey!);
      await expect(envelope.decrypt(moved, contextOf(bob.record))).rejects.toBeInstanceOf(
        EncryptionContextMismatchError,
      );
    } finally {
      await blobs.put(bob.record.blobKey!, bobBlob);
    }
    const restored = await envelope.decrypt(
      await blobs.get(bob.record.blobKey!),
      contextOf(bob.record),
    );
    expect(sha256(restored)).toBe(bob.facemapSha256);
  });
});
