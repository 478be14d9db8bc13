/**
 * Domain errors carry a stable machine-readable code and never an HTTP status: the HTTP
 * layer maps codes to statuses. Messages must never contain facemap bytes or PII.
 */
export class VaultError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A blob key that is empty, absolute, contains `..`, NUL, or other unsafe segments. */
export class InvalidBlobKeyError extends VaultError {
  constructor(reason: string) {
    super('invalid_blob_key', `invalid blob key: ${reason}`);
  }
}

export class BlobNotFoundError extends VaultError {
  constructor(key: string) {
    super('blob_not_found', `no blob under key ${JSON.stringify(key)}`);
  }
}

/** Any failure of a dependency (ledger, blob store, KMS) that may be transient. */
export class DependencyError extends VaultError {
  constructor(
    readonly dependency: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('dependency_failed', `${dependency}: ${message}`, options);
  }
}

export class PlaintextTooLargeError extends VaultError {
  constructor(size: number, max: number) {
    super('plaintext_too_large', `plaintext of ${size} bytes exceeds the limit of ${max} bytes`);
  }
}

/** Ciphertext that fails authentication, is truncated, or is encrypted under another key. */
export class DecryptionError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('decryption_failed', message, options);
  }
}

/** The ciphertext decrypted, but it belongs to another owner (invariant 6). */
export class EncryptionContextMismatchError extends VaultError {
  constructor(readonly keys: string[]) {
    super(
      'encryption_context_mismatch',
      `encryption context does not match the expected owner (keys: ${keys.join(', ')})`,
    );
  }
}
