import { createHmac, randomBytes } from 'node:crypto';
import { vaultKeyContext } from '../keys/vault-keys';
import type { EncryptionContext, Envelope, Ledger } from '../ports';

/** Bump when the blob layout or the context's meaning changes. */
export const FACEMAP_FORMAT = '1';

/** Keyed so that whoever reads CloudTrail (where KMS logs the context) cannot test guesses. */
export type UserReferenceHasher = (userReference: string) => string;

export function userReferenceHasher(key: Uint8Array): UserReferenceHasher {
  const copy = Buffer.from(key);
  return (userReference) => createHmac('sha256', copy).update(userReference, 'utf8').digest('hex');
}

/**
 * Invariant 6: binds a ciphertext to its enrollment and owner, without PII. Decryption
 * compares it exactly, so a blob copied onto another record is refused.
 */
export function facemapContext(
  enrollmentReference: string,
  userReference: string,
  hash: UserReferenceHasher,
): EncryptionContext {
  return {
    purpose: 'jumio-facemap',
    enrollment: enrollmentReference,
    user: hash(userReference),
    format: FACEMAP_FORMAT,
  };
}

const USER_HASH_KEY = 'user-reference-hmac-v1';
const USER_HASH_KEY_CONTEXT = vaultKeyContext(USER_HASH_KEY);

/**
 * The HMAC key for user references is generated once by whichever replica starts first
 * and kept in the ledger only wrapped by the envelope key, so every replica derives the
 * same contexts without another secret to distribute.
 */
export async function loadUserReferenceHasher(
  ledger: Ledger,
  envelope: Envelope,
): Promise<UserReferenceHasher> {
  const fresh = randomBytes(32);
  const { ciphertext, keyId } = await envelope.encrypt(fresh, USER_HASH_KEY_CONTEXT);
  fresh.fill(0);
  const stored = await ledger.transaction((tx) =>
    tx.vaultKeys.putIfAbsent(USER_HASH_KEY, ciphertext, keyId),
  );
  const key = await envelope.decrypt(stored, USER_HASH_KEY_CONTEXT);
  const hasher = userReferenceHasher(key);
  key.fill(0);
  return hasher;
}
