/**
 * The ports of the core. Adapters implement them; use cases depend only on these.
 * Nothing here may import an SDK, a driver or Express (checked by ESLint).
 */

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Structured logger (pino-compatible shape). Never pass facemap bytes or PII. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

// ---------------------------------------------------------------- blob store

export interface BlobListPage {
  keys: string[];
  /** Opaque cursor for the next page; absent on the last page. */
  nextCursor?: string;
}

/**
 * Object storage for ciphertexts. Keys are relative, `/`-separated, made of safe
 * segments; adapters refuse anything else with InvalidBlobKeyError.
 */
export interface BlobStore {
  /** Writes atomically: readers see the old object or the new one, never a torn one. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** Throws BlobNotFoundError when absent. */
  get(key: string): Promise<Uint8Array>;
  exists(key: string): Promise<boolean>;
  /** Removes the object and, where the store keeps versions, every version. Idempotent. */
  delete(key: string): Promise<void>;
  /** Keys under a prefix in lexicographic order, at most `limit` a page. */
  list(prefix: string, options?: { cursor?: string; limit?: number }): Promise<BlobListPage>;
  /** Proves the store is reachable (for /readyz). */
  ping(): Promise<void>;
}

// ---------------------------------------------------------------- envelope encryption

/** Authenticated but NOT secret (KMS logs it to CloudTrail): never put PII here. */
export type EncryptionContext = Readonly<Record<string, string>>;

export interface EncryptedBlob {
  ciphertext: Uint8Array;
  /** The wrapping key that protects the data key (KMS key ARN or local key name). */
  keyId: string;
}

export interface Envelope {
  /** The wrapping key new ciphertexts are encrypted under. */
  readonly keyId: string;
  /** Throws PlaintextTooLargeError above the configured maximum. */
  encrypt(plaintext: Uint8Array, context: EncryptionContext): Promise<EncryptedBlob>;
  /**
   * Throws DecryptionError for tampered, truncated or foreign ciphertext, and
   * EncryptionContextMismatchError when the stored context differs from `expected`.
   */
  decrypt(ciphertext: Uint8Array, expected: EncryptionContext): Promise<Uint8Array>;
}

// ---------------------------------------------------------------- ledger

export interface AuditEventInput {
  /** e.g. `enrollment.received`, `request.denied`. */
  type: string;
  /** Who did it: `jumio`, `system`, or an API key name. */
  actor: string;
  enrollmentReference?: string | null;
  authenticationReference?: string | null;
  userReference?: string | null;
  /** Non-PII facts only. */
  details?: Record<string, unknown>;
}

export interface AuditEvent extends Required<Omit<AuditEventInput, 'details'>> {
  id: number;
  at: Date;
  details: Record<string, unknown>;
}

export interface AuditRepository {
  append(event: AuditEventInput): Promise<AuditEvent>;
  list(filter?: {
    enrollmentReference?: string;
    userReference?: string;
    afterId?: number;
    limit?: number;
  }): Promise<AuditEvent[]>;
}

/** The repositories reachable inside one transaction. Later issues extend it. */
export interface LedgerTx {
  readonly audit: AuditRepository;
}

export interface Ledger {
  /**
   * Runs `fn` in one database transaction: commits when it resolves, rolls back when it
   * throws (and rethrows). Every write that must be atomic goes through here.
   */
  transaction<T>(fn: (tx: LedgerTx) => Promise<T>): Promise<T>;
  /** Cheap query proving the database answers (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
