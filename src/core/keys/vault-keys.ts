import { randomBytes } from 'node:crypto';
import type { BlobStores } from '../blobs';
import type { EncryptionContext, Envelope, Ledger } from '../ports';

/**
 * The secrets the vault generates once and keeps in the ledger only wrapped by the envelope
 * (table vault_keys): the user-reference HMAC key, the cursor key, and one key probe per
 * wrapping key.
 */

/** Binds a wrapped vault key to its name, so that one cannot stand in for another. */
export function vaultKeyContext(name: string): EncryptionContext {
  return { purpose: 'vault-key', name, format: '1' };
}

const KEY_PROBE_PREFIX = 'key-probe:';

/**
 * A key probe: 32 random bytes wrapped by one key when it was current, kept under that key
 * for good (never rewrapped), so that once the key is a previous one `vault doctor` can
 * prove it still decrypts without touching a facemap.
 */
export const keyProbeName = (keyId: string): string => `${KEY_PROBE_PREFIX}${keyId}`;
export const isKeyProbe = (name: string): boolean => name.startsWith(KEY_PROBE_PREFIX);
export const keyProbeContext = (name: string): EncryptionContext => ({
  purpose: 'key-probe',
  name,
  format: '1',
});

/** At start-up: the current key's probe, unless it exists. */
export async function ensureKeyProbe(ledger: Ledger, envelope: Envelope): Promise<void> {
  const name = keyProbeName(envelope.keyId);
  if (await ledger.transaction((tx) => tx.vaultKeys.get(name))) return;
  const bytes = randomBytes(32);
  const { ciphertext, keyId } = await envelope.encrypt(bytes, keyProbeContext(name));
  bytes.fill(0);
  await ledger.transaction((tx) => tx.vaultKeys.putIfAbsent(name, ciphertext, keyId));
}

/**
 * At start-up: the wrapping key of each vault key written before keys were recorded
 * (migration 7), found once by asking each configured key to unwrap it (its data key
 * only), so that GET /v1/keys counts it under its key. Unfound ones stay unrecorded
 * (`vault rewrap` rewraps them anyway).
 */
export async function recordVaultKeyIds(ledger: Ledger, envelope: Envelope): Promise<void> {
  const stored = await ledger.transaction((tx) => tx.vaultKeys.list());
  for (const key of stored.filter((k) => k.keyId === null)) {
    for (const keyId of [envelope.keyId, ...envelope.previousKeyIds]) {
      const unwraps = await envelope.verifyKey(keyId, key.ciphertext).then(
        () => true,
        () => false,
      );
      if (!unwraps) continue;
      await ledger.transaction((tx) => tx.vaultKeys.recordKeyId(key.name, keyId));
      break;
    }
  }
}

/** How a previous key was shown to still decrypt what it wrapped. */
export type KeyCheck =
  | { verifiedBy: 'probe' }
  | { verifiedBy: 'facemap'; enrollmentReference: string }
  | { verifiedBy: null };

/**
 * Proves that `keyId` alone still unwraps what it wrapped (`vault doctor`): its probe; for
 * a key older than probes, the data key of one facemap stored under it (never its content);
 * `verifiedBy: null` when neither exists. Throws what the envelope throws when it cannot.
 */
export async function verifyKey(
  deps: { ledger: Ledger; blobs: BlobStores; envelope: Envelope },
  keyId: string,
): Promise<KeyCheck> {
  const { ledger, envelope } = deps;
  const probe = await ledger.transaction((tx) => tx.vaultKeys.get(keyProbeName(keyId)));
  if (probe) {
    await envelope.verifyKey(keyId, probe.ciphertext);
    return { verifiedBy: 'probe' };
  }
  const e = await ledger.transaction((tx) => tx.enrollments.findUnderKey(keyId));
  if (!e?.blobKey) return { verifiedBy: null };
  const ciphertext = await deps.blobs.holding(e.blobStore).get(e.blobKey);
  await envelope.verifyKey(keyId, ciphertext);
  return { verifiedBy: 'facemap', enrollmentReference: e.enrollmentReference };
}
