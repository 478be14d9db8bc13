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
  /**
   * Where this store keeps its objects (`file:///abs/root`, `s3://bucket/prefix/`). Recorded
   * with every blob key, so a blob is read and destroyed only through the store holding it.
   */
  readonly location: string;
  /** Writes atomically: readers see the old object or the new one, never a torn one. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** Throws BlobNotFoundError when absent. */
  get(key: string): Promise<Uint8Array>;
  exists(key: string): Promise<boolean>;
  /** Size and last modification of an object; null when absent. */
  stat(key: string): Promise<{ size: number; lastModified: Date } | null>;
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
  /**
   * Wrapping keys accepted for decrypt only (key rotation): the configured previous keys,
   * and the name older versions recorded for a configured local key. `vault rewrap` moves
   * what they wrap to `keyId`; then they can be retired.
   */
  readonly previousKeyIds: readonly string[];
  /** Throws PlaintextTooLargeError above the configured maximum. */
  encrypt(plaintext: Uint8Array, context: EncryptionContext): Promise<EncryptedBlob>;
  /**
   * Throws DecryptionError for tampered, truncated or foreign ciphertext, and
   * EncryptionContextMismatchError when the stored context differs from `expected`.
   */
  decrypt(ciphertext: Uint8Array, expected: EncryptionContext): Promise<Uint8Array>;
  /**
   * Proves that the key `keyId` (the current or a previous one) alone unwraps the data key
   * of `ciphertext`, without decrypting its content: no plaintext, and the data key is
   * zeroed at once. Throws DecryptionError when it cannot (or `keyId` is not configured),
   * DependencyError when the key service did not answer.
   */
  verifyKey(keyId: string, ciphertext: Uint8Array): Promise<void>;
}

// ---------------------------------------------------------------- audit digest signing

/**
 * Signs the audit digests with a key the database does not hold (HMAC-SHA256 with a key
 * file, or an AWS KMS HMAC key), so whoever controls the database cannot forge them.
 */
export interface AuditSigner {
  /** Names the key (never the key itself): a KMS key id, or a file key's fingerprint. */
  readonly keyId: string;
  /** The signature of `message`, base64. */
  sign(message: Uint8Array): Promise<string>;
  /** False for a wrong or malformed signature; throws only when the signer is unreachable. */
  verify(message: Uint8Array, signature: string): Promise<boolean>;
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
  /** Position in the chain: 1, 2, 3 ... without gaps (core/compliance/chain.ts). */
  seq: number;
  prevHash: string;
  hash: string;
}

export interface AuditFilter {
  type?: string;
  userReference?: string;
  enrollmentReference?: string;
  /** `at` from (inclusive) / before (exclusive). */
  after?: Date;
  before?: Date;
  /** Keyset: entries with a larger sequence. */
  afterSeq?: number;
  limit?: number;
}

export interface AuditRepository {
  /**
   * Appends a chained entry. It locks the chain head until the transaction ends, so every
   * auditing transaction is serialised from its first append on: lock the other rows a
   * transaction needs BEFORE its first append (a fixed lock order leaves no deadlock).
   */
  append(event: AuditEventInput): Promise<AuditEvent>;
  /** Appends several chained entries, in order, in one step (group commit); same lock rule. */
  appendMany(events: AuditEventInput[]): Promise<AuditEvent[]>;
  /**
   * Appends `event` with the transaction, as its last statement before COMMIT (in the
   * order recorded, after entries appended earlier): the chain head is then held only for
   * that statement and the commit instead of for the rest of the transaction, which is
   * what serialises auditing transactions. Nothing is written if the transaction fails.
   * Prefer it to `append` unless the entry's id or sequence is needed inside the
   * transaction; a recorded entry is not visible to the transaction's own reads.
   */
  record(event: AuditEventInput): void;
  list(filter?: {
    enrollmentReference?: string;
    userReference?: string;
    afterId?: number;
    limit?: number;
  }): Promise<AuditEvent[]>;
  /** Entries matching `filter`, by sequence (the audit API). */
  page(filter: AuditFilter): Promise<AuditEvent[]>;
  /** The chain after `afterSeq`, at most `limit` entries, by sequence (verification). */
  chain(afterSeq: number, limit: number): Promise<AuditEvent[]>;
  /** The last sequence and hash (0 and the genesis hash when empty), as committed. */
  head(): Promise<{ seq: number; hash: string }>;
  /** The most recent entry of `type` (highest sequence), or null. */
  latest(type: string): Promise<AuditEvent | null>;
  /** Chains entries written before the chain existed (once, at start-up); how many. */
  sealUnchained(): Promise<number>;
}

/** The last signed digest of the audit chain (core/compliance/digests.ts). */
export interface AuditDigestState {
  /** Digests written so far (the last one's number). */
  digests: number;
  toSequence: number;
  signature: string | null;
  blobKey: string | null;
  createdAt: Date | null;
}

export interface AuditDigestRepository {
  /** Locks and reads the state: one digest writer at a time. */
  lock(): Promise<AuditDigestState>;
  /** The same state, read without a lock (for display). */
  current(): Promise<AuditDigestState>;
  save(state: AuditDigestState): Promise<void>;
}

export const ENROLLMENT_STATES = [
  'PENDING',
  'STORED',
  'ACTIVE',
  'REJECTED',
  'FAILED',
  'SUPERSEDED',
  /** Stored, but its order against the user's ACTIVE facemap is unknown: an operator decides. */
  'PARKED',
  'ERASED',
] as const;
export type EnrollmentState = (typeof ENROLLMENT_STATES)[number];

/** One onboarding scan and the lifecycle of its facemap. Holds no PII and no bytes. */
export interface EnrollmentRecord {
  enrollmentReference: string;
  userReference: string | null;
  state: EnrollmentState;
  reason: string | null;
  verificationStatus: string | null;
  similarity: string | null;
  validity: boolean | null;
  /** `identityVerification.reason` (Jumio's code; kept only when it looks like one). */
  verificationReason: string | null;
  /** The facemap URL the callback carried (checked again before any fetch). */
  callbackFacemapUrl: string | null;
  /** The URL confirmed through the Retrieval API, once confirmed. */
  facemapUrl: string | null;
  scanSource: string | null;
  sourceAddress: string | null;
  /** The callback's `transactionDate` (unsigned). */
  transactionDate: Date | null;
  callbackDate: Date | null;
  /** The Retrieval API's `transaction.date`, captured at confirm (authoritative). */
  jumioTransactionDate: Date | null;
  blobKey: string | null;
  /** The `BlobStore.location` holding `blobKey`; null for blobs recorded before it was kept. */
  blobStore: string | null;
  facemapBytes: number | null;
  ciphertextSha256: string | null;
  keyId: string | null;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
  confirmedAt: Date | null;
  storedAt: Date | null;
  activatedAt: Date | null;
  jumioDeletedAt: Date | null;
  supersededAt: Date | null;
  blobDestroyedAt: Date | null;
  /** The last PASSED authentication with this facemap (the retention clock). */
  lastInteractionAt: Date | null;
  /** Set by `POST .../purpose-satisfied`: the retention deadline becomes this time. */
  purposeSatisfiedAt: Date | null;
  /** ERASED tombstones: when, by which erasure, and the state it had. */
  erasedAt: Date | null;
  erasureId: string | null;
  stateBeforeErasure: EnrollmentState | null;
}

/** The fields known when a callback arrives. */
export type NewEnrollment = Pick<
  EnrollmentRecord,
  | 'enrollmentReference'
  | 'userReference'
  | 'state'
  | 'reason'
  | 'verificationStatus'
  | 'similarity'
  | 'validity'
  | 'verificationReason'
  | 'callbackFacemapUrl'
  | 'scanSource'
  | 'sourceAddress'
  | 'transactionDate'
  | 'callbackDate'
  | 'nextAttemptAt'
>;

/** Columns a pipeline step may change. */
export type EnrollmentPatch = Partial<
  Omit<EnrollmentRecord, 'enrollmentReference' | 'createdAt' | 'updatedAt'>
>;

export interface EnrollmentRepository {
  /** Inserts unless the scan reference exists; true when this call created it. */
  insert(enrollment: NewEnrollment, now: Date): Promise<boolean>;
  /**
   * Inserts those whose scan reference does not exist yet, in one statement (group commit);
   * the references this call created. Every item has the same fields set.
   */
  insertMany(enrollments: NewEnrollment[], now: Date): Promise<Set<string>>;
  get(
    enrollmentReference: string,
    options?: { forUpdate?: boolean },
  ): Promise<EnrollmentRecord | null>;
  /** The user's enrollments, newest first. */
  listByUser(userReference: string): Promise<EnrollmentRecord[]>;
  findActive(
    userReference: string,
    options?: { forUpdate?: boolean },
  ): Promise<EnrollmentRecord | null>;
  /** How many enrollments are in each state (states with none are absent). */
  countByState(): Promise<Partial<Record<EnrollmentState, number>>>;
  /** The enrollments among `references` (the orphan sweep checks a listing page at once). */
  getMany(references: string[]): Promise<EnrollmentRecord[]>;
  /**
   * Leases to `owner` until `now + leaseMs` one enrollment holding a facemap (STORED,
   * ACTIVE, PARKED) wrapped by one of `keyIds`, skipping rows another worker holds (a live
   * lease, or locked: FOR UPDATE SKIP LOCKED) and those in `skip`. Only the lease columns
   * change (not the row's place in its queue). Null when there is none.
   */
  leaseUnderKeys(
    keyIds: readonly string[],
    owner: string,
    now: Date,
    leaseMs: number,
    skip: readonly string[],
  ): Promise<EnrollmentRecord | null>;
  /** Ends `owner`'s lease, changing nothing else; false when it was not theirs. */
  releaseLease(enrollmentReference: string, owner: string): Promise<boolean>;
  /** One enrollment holding a facemap wrapped by `keyId`, or null. */
  findUnderKey(keyId: string): Promise<EnrollmentRecord | null>;
  /**
   * Applies `patch`, only while `leaseOwner` still holds the lease (fencing), or
   * unconditionally when it is null. Always sets updated_at. False when nothing matched.
   */
  update(
    enrollmentReference: string,
    patch: EnrollmentPatch,
    now: Date,
    leaseOwner: string | null,
  ): Promise<boolean>;
}

export interface EnrollmentIntent {
  enrollmentReference: string;
  userReference: string;
  registeredBy: string;
  createdAt: Date;
}

export interface EnrollmentIntentRepository {
  /** Inserts unless it exists; returns the stored intent either way. */
  register(intent: Omit<EnrollmentIntent, 'createdAt'>): Promise<EnrollmentIntent>;
  get(enrollmentReference: string): Promise<EnrollmentIntent | null>;
  getMany(enrollmentReferences: string[]): Promise<EnrollmentIntent[]>;
}

export interface AuthenticationCallbackRecord {
  authenticationReference: string;
  transactionResult: string;
  enrollmentReference: string | null;
  transactionDate: Date | null;
  callbackDate: Date | null;
  scanSource: string | null;
  sourceAddress: string | null;
}

export interface AuthenticationCallbackRepository {
  /** Records a callback; true when it is new (same reference and result: a duplicate). */
  record(callback: AuthenticationCallbackRecord): Promise<boolean>;
  /** The callbacks recorded for one authentication, oldest first. */
  listFor(authenticationReference: string): Promise<AuthenticationCallbackRecord[]>;
}

// ---------------------------------------------------------------- authentications

export const AUTHENTICATION_STATES = [
  'INITIATED',
  'PASSED',
  'FAILED',
  'INVALID',
  'EXPIRED',
] as const;
export type AuthenticationState = (typeof AUTHENTICATION_STATES)[number];
export type FinalAuthenticationState = Exclude<AuthenticationState, 'INITIATED'>;

/** Who settled the final state: Jumio's callback, the Retrieval API, or a newer initiate. */
/** Who settled a final state; `erased`: cancelled by the person's erasure. */
export const AUTHENTICATION_SOURCES = ['callback', 'reconciled', 'superseded', 'erased'] as const;
export type AuthenticationSource = (typeof AUTHENTICATION_SOURCES)[number];

/** One Jumio authentication transaction. Holds no bytes and no PII. */
export interface AuthenticationRecord {
  /** Jumio's `authenticationTransactionReference`. */
  authenticationReference: string;
  enrollmentReference: string;
  userReference: string;
  state: AuthenticationState;
  reason: string | null;
  source: AuthenticationSource | null;
  /** The caller's stated purpose (audited with the decrypt). */
  purpose: string;
  /** The API key name that asked for it. */
  requestedBy: string;
  redirectUrl: string | null;
  notifyUrl: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** Creation + 15 minutes: Jumio's limit for completing it. */
  expiresAt: Date;
  finalizedAt: Date | null;
  jumioDeletedAt: Date | null;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  leaseOwner: string | null;
  leaseUntil: Date | null;
}

export type NewAuthentication = Pick<
  AuthenticationRecord,
  | 'authenticationReference'
  | 'enrollmentReference'
  | 'userReference'
  | 'state'
  | 'purpose'
  | 'requestedBy'
  | 'redirectUrl'
  | 'notifyUrl'
  | 'expiresAt'
  | 'nextAttemptAt'
>;

export type AuthenticationPatch = Partial<
  Omit<AuthenticationRecord, 'authenticationReference' | 'createdAt' | 'updatedAt'>
>;

/** Keyset position in a newest-first listing. */
export interface ListPosition {
  createdAt: Date;
  key: string;
}

export interface AuthenticationRepository {
  insert(authentication: NewAuthentication, now: Date): Promise<void>;
  get(
    authenticationReference: string,
    options?: { forUpdate?: boolean },
  ): Promise<AuthenticationRecord | null>;
  /** Newest first, after `after` (exclusive), at most `limit`. */
  list(filter: {
    userReference?: string;
    state?: AuthenticationState;
    limit: number;
    after?: ListPosition;
  }): Promise<AuthenticationRecord[]>;
  /** The enrollment's INITIATED authentications still within their 15 minutes, locked. */
  listLive(enrollmentReference: string, now: Date): Promise<AuthenticationRecord[]>;
  /** How many authentications the user started since `since`, and the oldest of them. */
  countSince(userReference: string, since: Date): Promise<{ count: number; oldest: Date | null }>;
  /** Always sets updated_at. False when nothing matched. */
  update(authenticationReference: string, patch: AuthenticationPatch, now: Date): Promise<boolean>;
  /**
   * Marks an initiate in flight for the enrollment until `now + ttlMs`, unless another
   * owner's mark is still live. True when `owner` holds it.
   */
  claimInitiation(
    enrollmentReference: string,
    owner: string,
    now: Date,
    ttlMs: number,
  ): Promise<boolean>;
  /** True when `owner` still held the mark (it is removed either way only if theirs). */
  releaseInitiation(enrollmentReference: string, owner: string): Promise<boolean>;
  /** True while an initiate holds the enrollment's mark (it may be reading its facemap). */
  initiationLive(enrollmentReference: string, now: Date): Promise<boolean>;
}

/** The first answer to an Idempotency-Key, kept 24 hours. */
export interface IdempotencyRecord {
  apiKeyName: string;
  key: string;
  requestSha256: string;
  /** Null while the first request is in flight. */
  response: Record<string, unknown> | null;
  createdAt: Date;
  expiresAt: Date;
}

export interface IdempotencyRepository {
  /**
   * Starts a request under `key`: inserts an in-flight record unless a live one exists (an
   * expired one is replaced). Returns the live record and whether this call created it.
   */
  begin(
    input: { apiKeyName: string; key: string; requestSha256: string },
    now: Date,
    ttlMs: number,
  ): Promise<{ record: IdempotencyRecord; created: boolean }>;
  complete(apiKeyName: string, key: string, response: Record<string, unknown>): Promise<void>;
  /** Forgets an in-flight record (the request ended before anything irreversible). */
  release(apiKeyName: string, key: string): Promise<void>;
  /** Deletes up to `limit` expired records; returns how many. */
  purgeExpired(now: Date, limit: number): Promise<number>;
}

// ---------------------------------------------------------------- notifications

export const NOTIFICATION_STATES = ['PENDING', 'DELIVERED', 'FAILED'] as const;
export type NotificationState = (typeof NOTIFICATION_STATES)[number];

/** One event for a calling service, delivered at least once under a stable id. */
export interface NotificationRecord {
  /** The `webhook-id`: the same on every attempt. */
  id: string;
  type: string;
  authenticationReference: string | null;
  url: string;
  /** The exact JSON body signed and sent. */
  payload: string;
  state: NotificationState;
  /** Retried until then, then FAILED. */
  deliverUntil: Date;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  /** The receiver's last HTTP status; null when no answer came. */
  lastStatus: number | null;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type NewNotification = Pick<
  NotificationRecord,
  'id' | 'type' | 'authenticationReference' | 'url' | 'payload' | 'deliverUntil' | 'nextAttemptAt'
>;

export type NotificationPatch = Partial<
  Omit<NotificationRecord, 'id' | 'type' | 'payload' | 'createdAt' | 'updatedAt'>
>;

export interface NotificationRepository {
  /** Inserts as PENDING. */
  insert(notification: NewNotification, now: Date): Promise<void>;
  get(id: string, options?: { forUpdate?: boolean }): Promise<NotificationRecord | null>;
  /** Oldest first, after `after` (exclusive), at most `limit`. */
  list(filter: {
    state?: NotificationState;
    authenticationReference?: string;
    limit: number;
    after?: ListPosition;
  }): Promise<NotificationRecord[]>;
  update(id: string, patch: NotificationPatch, now: Date): Promise<boolean>;
}

/**
 * Delivers one signed notification (Standard Webhooks) to a calling service: one POST,
 * no redirects followed, bounded in time and response size. Resolves with the receiver's
 * status, whatever it is; rejects when no answer came (a VaultError with a safe message).
 */
export interface NotificationSender {
  send(message: { id: string; url: string; payload: string }): Promise<{ status: number }>;
}

// ---------------------------------------------------------------- background work

/**
 * The queues of background work. Each is a table whose rows carry the same lease columns
 * (attempts, next_attempt_at, last_error, lease_owner, lease_until); see core/work.ts.
 */
export const QUEUES = [
  'enrollments',
  'schedules',
  'authentications',
  'notifications',
  'erasures',
] as const;
export type QueueName = (typeof QUEUES)[number];

export interface QueueSchedule {
  attempts: number;
  /** When the row is due again; null when it has nothing more to do. */
  nextAttemptAt: Date | null;
  lastError: string | null;
}

export interface QueueStats {
  due: number;
  leased: number;
  /** The longest-waiting due row's next_attempt_at; null when nothing is due. */
  oldestDueAt: Date | null;
}

export interface QueueRepository {
  /**
   * Leases the longest-waiting row of `queue` due by `dueBy` (default `now`) to `owner` until
   * `now + leaseMs`, skipping rows another worker holds (FOR UPDATE SKIP LOCKED). Returns its
   * key, or null.
   */
  claim(
    queue: QueueName,
    owner: string,
    now: Date,
    leaseMs: number,
    dueBy?: Date,
  ): Promise<string | null>;
  /** Locks the row; true while `owner` still holds its lease (the fence of every commit). */
  holds(queue: QueueName, key: string, owner: string): Promise<boolean>;
  /** Releases the lease and sets when the row is due again. */
  settle(queue: QueueName, key: string, schedule: QueueSchedule, now: Date): Promise<void>;
  stats(queue: QueueName, now: Date): Promise<QueueStats>;
}

/** A periodic task (orphan sweep, ...) as a row of the `schedules` queue. */
export interface ScheduleRecord {
  name: string;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  /** The task's own progress between steps (e.g. a listing cursor). */
  progress: Record<string, unknown>;
  lastCompletedAt: Date | null;
}

export interface ScheduleRepository {
  /** Creates the task, due at `firstRunAt`, unless it exists. */
  ensure(name: string, firstRunAt: Date): Promise<void>;
  get(name: string): Promise<ScheduleRecord | null>;
  saveProgress(
    name: string,
    progress: Record<string, unknown>,
    completedAt: Date | null,
  ): Promise<void>;
}

// ---------------------------------------------------------------- compliance

/** Filters of the inventory (they combine). */
export interface InventoryFilter {
  state?: EnrollmentState;
  createdAfter?: Date;
  createdBefore?: Date;
  retentionDueBefore?: Date;
  legalHold?: boolean;
}

/** Keyset position in the inventory's order (created_at, enrollment_reference). */
export interface InventoryPosition {
  /** created_at as the database's exact text (microseconds survive the round trip). */
  createdAt: string;
  enrollmentReference: string;
}

export interface InventoryItem {
  enrollment: EnrollmentRecord;
  lastInteractionAt: Date | null;
  retentionDueAt: Date;
  legalHold: boolean;
  position: InventoryPosition;
}

export interface InventorySummary {
  byState: Partial<Record<EnrollmentState, number>>;
  oldestActive: { enrollmentReference: string; activatedAt: Date } | null;
  retentionPastDue: number;
  retentionDueWithin30Days: number;
  legalHolds: number;
  /** Plaintext facemap bytes held (STORED, ACTIVE, PARKED). */
  facemapBytes: number;
  facemapsByKey: Array<{ keyId: string; facemaps: number }>;
}

export interface InventoryRepository {
  /** Rows after `after` in (created_at, enrollment_reference) order. */
  page(
    filter: InventoryFilter,
    after: InventoryPosition | null,
    limit: number,
    retentionDays: number,
  ): Promise<InventoryItem[]>;
  summary(now: Date, retentionDays: number): Promise<InventorySummary>;
  /** Facemaps held (STORED, ACTIVE, PARKED) per wrapping key, by key id. */
  facemapsByKey(): Promise<InventorySummary['facemapsByKey']>;
  /**
   * Enrollments past their retention deadline at `now` that still hold anything (not
   * ERASED), of users without a legal hold and without a pending erasure, grouped by user.
   */
  retentionDue(
    now: Date,
    retentionDays: number,
    limit: number,
  ): Promise<Array<{ userReference: string; enrollmentReferences: string[] }>>;
  /** Marks the user's enrollments (not ERASED) purpose-satisfied at `now`; how many. */
  markPurposeSatisfied(userReference: string, now: Date): Promise<number>;
  /**
   * Per UTC month (`YYYY-MM`, ascending, only months with activity): facemaps stored, and
   * facemaps that stopped being held (blob destroyed or enrollment erased).
   */
  facemapsByMonth(): Promise<Array<{ month: string; stored: number; destroyed: number }>>;
  /**
   * Enrollments (not ERASED) whose retention deadline falls in [from, to), per UTC month
   * (`YYYY-MM`, only months with deadlines); `onHold`: those of users under a legal hold.
   */
  retentionByMonth(
    from: Date,
    to: Date,
    retentionDays: number,
  ): Promise<Array<{ month: string; due: number; onHold: number }>>;
}

export interface LegalHold {
  userReference: string;
  reference: string;
  reason: string;
  placedBy: string;
  placedAt: Date;
}

export interface LegalHoldRepository {
  get(userReference: string, options?: { forUpdate?: boolean }): Promise<LegalHold | null>;
  put(hold: LegalHold): Promise<void>;
  /** True when there was one. */
  remove(userReference: string): Promise<boolean>;
  /** Holds by user reference, after `after` (exclusive), at most `limit`. */
  list(after: string | null, limit: number): Promise<LegalHold[]>;
}

export const ERASURE_REASONS = [
  'gdpr_art17',
  'account_closed',
  'consent_withdrawn',
  'retention',
  'other',
] as const;
export type ErasureReason = (typeof ERASURE_REASONS)[number];

/** A blob an erasure destroys, in the store its row named. */
export interface ErasureBlob {
  key: string;
  store: string | null;
}

export interface ErasureRecord {
  erasureId: string;
  userReference: string;
  enrollmentReferences: string[];
  reason: ErasureReason;
  ticket: string | null;
  requestedBy: string;
  state: 'PENDING' | 'DONE';
  /** What the erasure must destroy (recorded blob keys). */
  blobs: ErasureBlob[];
  /** What it destroyed (set when DONE). */
  blobKeysDestroyed: string[] | null;
  requestedAt: Date;
  erasedAt: Date | null;
  auditSequence: number | null;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
}

export interface ErasureRepository {
  /** `lease`: the request that created it runs its first step itself, fenced like a worker. */
  insert(
    erasure: Omit<
      ErasureRecord,
      'blobKeysDestroyed' | 'erasedAt' | 'auditSequence' | 'attempts' | 'lastError'
    >,
    lease?: { owner: string; until: Date },
  ): Promise<void>;
  get(erasureId: string): Promise<ErasureRecord | null>;
  /** The user's most recent erasure, PENDING first. */
  latestForUser(userReference: string): Promise<ErasureRecord | null>;
  /** Newest first (requestedAt, erasureId descending), before `before` (exclusive). */
  list(
    filter: { state?: ErasureRecord['state']; userReference?: string },
    before: { requestedAt: Date; erasureId: string } | null,
    limit: number,
  ): Promise<ErasureRecord[]>;
  complete(
    erasureId: string,
    done: { blobKeysDestroyed: string[]; erasedAt: Date; auditSequence: number },
  ): Promise<void>;
}

/** A secret the vault generated, as stored: wrapped by the envelope. */
export interface VaultKeyRecord {
  name: string;
  ciphertext: Uint8Array;
  /** The wrapping key; null when written before it was recorded (migration 7). */
  keyId: string | null;
  createdAt: Date;
  /** When it was last rewrapped; null if never. */
  updatedAt: Date | null;
}

/** Secrets generated once, stored only wrapped (envelope-encrypted). */
export interface VaultKeyRepository {
  /** Stores `ciphertext` (wrapped by `keyId`) under `name` unless present; returns what is stored. */
  putIfAbsent(name: string, ciphertext: Uint8Array, keyId?: string): Promise<Uint8Array>;
  get(name: string, options?: { forUpdate?: boolean }): Promise<VaultKeyRecord | null>;
  /** Every stored key (a handful), by name. */
  list(): Promise<VaultKeyRecord[]>;
  /** Replaces the ciphertext of `name` (rewrapped under `keyId`). */
  replace(name: string, ciphertext: Uint8Array, keyId: string, now: Date): Promise<void>;
  /** Records the key wrapping `name` where none was recorded. */
  recordKeyId(name: string, keyId: string): Promise<void>;
}

/** The repositories reachable inside one transaction. */
export interface LedgerTx {
  readonly audit: AuditRepository;
  readonly enrollments: EnrollmentRepository;
  readonly intents: EnrollmentIntentRepository;
  readonly authenticationCallbacks: AuthenticationCallbackRepository;
  readonly authentications: AuthenticationRepository;
  readonly idempotency: IdempotencyRepository;
  readonly notifications: NotificationRepository;
  readonly vaultKeys: VaultKeyRepository;
  readonly queues: QueueRepository;
  readonly schedules: ScheduleRepository;
  readonly auditDigests: AuditDigestRepository;
  readonly inventory: InventoryRepository;
  readonly legalHolds: LegalHoldRepository;
  readonly erasures: ErasureRepository;
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
