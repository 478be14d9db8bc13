import type {
  AuditDigestRepository,
  AuditDigestState,
  AuditEvent,
  AuditEventInput,
  AuditFilter,
  AuditRepository,
  AuthenticationCallbackRecord,
  AuthenticationCallbackRepository,
  AuthenticationPatch,
  AuthenticationRecord,
  AuthenticationRepository,
  EnrollmentIntent,
  EnrollmentIntentRepository,
  EnrollmentPatch,
  EnrollmentRecord,
  EnrollmentRepository,
  EnrollmentState,
  IdempotencyRecord,
  IdempotencyRepository,
  ErasureBlob,
  ErasureReason,
  ErasureRecord,
  ErasureRepository,
  InventoryFilter,
  InventoryItem,
  InventoryPosition,
  InventoryRepository,
  InventorySummary,
  LegalHold,
  LegalHoldRepository,
  Ledger,
  LedgerTx,
  ListPosition,
  NewAuthentication,
  NewEnrollment,
  NewNotification,
  NotificationPatch,
  NotificationRecord,
  NotificationRepository,
  QueueName,
  QueueRepository,
  QueueSchedule,
  QueueStats,
  ScheduleRecord,
  ScheduleRepository,
  VaultKeyRecord,
  VaultKeyRepository,
} from '../../core/ports';
import { entryHash, normaliseDetails } from '../../core/compliance/chain';
import { DependencyError } from '../../core/errors';
import type { SqlClient, SqlDatabase } from './sql';

/**
 * How a transaction locks a row it will change. Not FOR UPDATE: that also blocks the KEY
 * SHARE lock a foreign key check takes on the referenced row (an authentication written
 * twice in one transaction re-checks its enrollment), and a transaction holding the audit
 * chain head then deadlocked with one holding the enrollment and waiting for the head.
 * No key is ever updated, so NO KEY UPDATE serialises writers just the same.
 */
const ROW_LOCK = ' FOR NO KEY UPDATE';

interface AuditRow {
  id: string | number;
  at: Date;
  type: string;
  actor: string;
  enrollment_reference: string | null;
  authentication_reference: string | null;
  user_reference: string | null;
  details: Record<string, unknown>;
  seq: string | number | null;
  prev_hash: string | null;
  hash: string | null;
}

function toAuditEvent(row: AuditRow): AuditEvent {
  return {
    id: Number(row.id),
    at: row.at,
    type: row.type,
    actor: row.actor,
    enrollmentReference: row.enrollment_reference,
    authenticationReference: row.authentication_reference,
    userReference: row.user_reference,
    details: row.details,
    seq: Number(row.seq ?? 0),
    prevHash: row.prev_hash ?? '',
    hash: row.hash ?? '',
  };
}

const AUDIT_COLUMNS =
  'id, at, type, actor, enrollment_reference, authentication_reference, user_reference, details, seq, prev_hash, hash';

/**
 * The chain is extended under a lock on its one head row, held until commit, rather than
 * by a sealer that chains committed rows after the fact. Measured with
 * scripts/bench/audit-chain.ts on this 2-core machine (transactions of 1 UPDATE + 2
 * entries): PostgreSQL 8 writers: plain inserts 1493 tx/s, head lock 218 tx/s, sealer
 * 1353 tx/s (48 entries unsealed when the writers stopped, caught up in 76 ms); 32 writers:
 * 2035 / 199 / 1860; 1 writer: 234 / 286 / 322; PGlite (one connection): 1150 / 549 / 1588.
 * The lock caps chained transactions at the commit rate (~200/s here), which is far above
 * what the vault audits (onboardings, authentications and admin actions are human-paced;
 * denials are aggregated), and it buys what the sealer cannot: an entry has its sequence
 * and hash the moment it commits (no window in which a committed entry can vanish
 * unnoticed, receipts can cite their sequence, no unsealed state to scan for), and ids
 * committing out of order cannot matter because the sequence is taken under the lock.
 * Appends come after a transaction's other row locks (the head is always taken last), so
 * the lock adds no deadlock (0 in the benchmark).
 */
class SqlAuditRepository implements AuditRepository {
  /** Entries recorded and not yet written (see `record`). */
  private recorded: AuditEventInput[] = [];

  constructor(private readonly sql: SqlClient) {}

  /** One entry: the same chaining as a group's (appendMany), so there is one of it. */
  async append(event: AuditEventInput): Promise<AuditEvent> {
    const appended = await this.appendMany([event]);
    return appended[appended.length - 1]!;
  }

  record(event: AuditEventInput): void {
    this.recorded.push(event);
  }

  /** Writes what was recorded; SqlLedger.transaction calls it right before COMMIT. */
  async writeRecorded(): Promise<void> {
    await this.appendMany([]);
  }

  /**
   * Recorded entries go first, so the chain keeps the order the transaction produced them
   * in; the result holds only `events`' entries.
   */
  async appendMany(events: AuditEventInput[]): Promise<AuditEvent[]> {
    const earlier = this.recorded.length;
    if (earlier > 0) events = [...this.recorded.splice(0), ...events];
    if (events.length === 0) return [];
    const { rows: heads } = await this.sql.query<{ seq: string; hash: string; now: Date }>(
      `SELECT seq, hash, date_trunc('milliseconds', now()) AS now
         FROM audit_chain_head WHERE id = 1 FOR UPDATE`,
    );
    const head = heads[0]!;
    let seq = Number(head.seq);
    let prevHash = head.hash;
    const entries = events.map((event) => {
      const fields = {
        seq: ++seq,
        at: head.now,
        type: event.type,
        actor: event.actor,
        enrollmentReference: event.enrollmentReference ?? null,
        authenticationReference: event.authenticationReference ?? null,
        userReference: event.userReference ?? null,
        details: normaliseDetails(event.details),
        prevHash,
      };
      prevHash = entryHash(fields);
      return {
        at: fields.at.toISOString(),
        type: fields.type,
        actor: fields.actor,
        enrollment_reference: fields.enrollmentReference,
        authentication_reference: fields.authenticationReference,
        user_reference: fields.userReference,
        details: fields.details,
        seq: fields.seq,
        prev_hash: fields.prevHash,
        hash: prevHash,
      };
    });
    // One statement for the whole group: the rows from one JSON array, the head moved.
    const { rows } = await this.sql.query<AuditRow>(
      `WITH moved AS (UPDATE audit_chain_head SET seq = $2, hash = $3 WHERE id = 1)
       INSERT INTO audit_events
         (at, type, actor, enrollment_reference, authentication_reference, user_reference,
          details, seq, prev_hash, hash)
       SELECT at, type, actor, enrollment_reference, authentication_reference, user_reference,
              details, seq, prev_hash, hash
         FROM jsonb_populate_recordset(NULL::audit_events, $1::jsonb)
        ORDER BY seq
       RETURNING ${AUDIT_COLUMNS}`,
      [JSON.stringify(entries), seq, prevHash],
    );
    return rows
      .map(toAuditEvent)
      .sort((a, b) => a.seq - b.seq)
      .slice(earlier);
  }

  async list(filter: Parameters<AuditRepository['list']>[0] = {}): Promise<AuditEvent[]> {
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events
        WHERE ($1::text IS NULL OR enrollment_reference = $1)
          AND ($2::text IS NULL OR user_reference = $2)
          AND id > $3
        ORDER BY id
        LIMIT $4`,
      [
        filter.enrollmentReference ?? null,
        filter.userReference ?? null,
        filter.afterId ?? 0,
        Math.min(Math.max(filter.limit ?? 100, 1), 1000),
      ],
    );
    return rows.map(toAuditEvent);
  }

  async page(filter: AuditFilter): Promise<AuditEvent[]> {
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events
        WHERE seq > $1
          AND ($2::text IS NULL OR type = $2)
          AND ($3::text IS NULL OR user_reference = $3)
          AND ($4::text IS NULL OR enrollment_reference = $4)
          AND ($5::timestamptz IS NULL OR at >= $5)
          AND ($6::timestamptz IS NULL OR at < $6)
        ORDER BY seq
        LIMIT $7`,
      [
        filter.afterSeq ?? 0,
        filter.type ?? null,
        filter.userReference ?? null,
        filter.enrollmentReference ?? null,
        filter.after ?? null,
        filter.before ?? null,
        Math.min(Math.max(filter.limit ?? 100, 1), 1000),
      ],
    );
    return rows.map(toAuditEvent);
  }

  async chain(afterSeq: number, limit: number): Promise<AuditEvent[]> {
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [afterSeq, limit],
    );
    return rows.map(toAuditEvent);
  }

  async head(): Promise<{ seq: number; hash: string }> {
    const { rows } = await this.sql.query<{ seq: string; hash: string }>(
      'SELECT seq, hash FROM audit_chain_head WHERE id = 1',
    );
    return { seq: Number(rows[0]!.seq), hash: rows[0]!.hash };
  }

  async latest(type: string): Promise<AuditEvent | null> {
    // audit_events_by_type_seq: one index step back from the end.
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE type = $1 ORDER BY seq DESC LIMIT 1`,
      [type],
    );
    return rows[0] ? toAuditEvent(rows[0]) : null;
  }

  async sealUnchained(): Promise<number> {
    // Cheap check first (every replica runs this at start-up), then under the head lock,
    // so that replicas starting together seal each entry once.
    const { rows: any } = await this.sql.query(
      'SELECT 1 FROM audit_events WHERE seq IS NULL LIMIT 1',
    );
    if (any.length === 0) return 0;
    const { rows: heads } = await this.sql.query<{ seq: string; hash: string }>(
      'SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE',
    );
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE seq IS NULL ORDER BY id`,
    );
    if (rows.length === 0) return 0;
    let seq = Number(heads[0]!.seq);
    let prevHash = heads[0]!.hash;
    for (const row of rows) {
      seq += 1;
      const e = toAuditEvent(row);
      const hash = entryHash({ ...e, at: new Date(e.at.getTime()), seq, prevHash });
      // The trigger lets exactly this through: the seal columns, once, from NULL.
      await this.sql.query(
        'UPDATE audit_events SET seq = $2, prev_hash = $3, hash = $4 WHERE id = $1',
        [row.id, seq, prevHash, hash],
      );
      prevHash = hash;
    }
    await this.sql.query('UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1', [
      seq,
      prevHash,
    ]);
    return rows.length;
  }
}

class SqlAuditDigestRepository implements AuditDigestRepository {
  constructor(private readonly sql: SqlClient) {}

  lock(): Promise<AuditDigestState> {
    return this.read(' FOR UPDATE');
  }

  current(): Promise<AuditDigestState> {
    return this.read('');
  }

  private async read(lock: string): Promise<AuditDigestState> {
    const { rows } = await this.sql.query<{
      digests: string;
      to_sequence: string;
      signature: string | null;
      blob_key: string | null;
      created_at: Date | null;
    }>(`SELECT * FROM audit_digest_state WHERE id = 1${lock}`);
    const row = rows[0]!;
    return {
      digests: Number(row.digests),
      toSequence: Number(row.to_sequence),
      signature: row.signature,
      blobKey: row.blob_key,
      createdAt: row.created_at,
    };
  }

  async save(state: AuditDigestState): Promise<void> {
    await this.sql.query(
      `UPDATE audit_digest_state
          SET to_sequence = $1, signature = $2, blob_key = $3, created_at = $4, digests = $5
        WHERE id = 1`,
      [state.toSequence, state.signature, state.blobKey, state.createdAt, state.digests],
    );
  }
}

/** EnrollmentRecord field -> column. Also the allowlist of what a patch may write. */
const ENROLLMENT_COLUMNS = {
  enrollmentReference: 'enrollment_reference',
  userReference: 'user_reference',
  state: 'state',
  reason: 'reason',
  verificationStatus: 'verification_status',
  similarity: 'similarity',
  validity: 'validity',
  verificationReason: 'verification_reason',
  callbackFacemapUrl: 'callback_facemap_url',
  facemapUrl: 'facemap_url',
  scanSource: 'scan_source',
  sourceAddress: 'source_address',
  transactionDate: 'transaction_date',
  callbackDate: 'callback_date',
  jumioTransactionDate: 'jumio_transaction_date',
  blobKey: 'blob_key',
  blobStore: 'blob_store',
  facemapBytes: 'facemap_bytes',
  ciphertextSha256: 'ciphertext_sha256',
  keyId: 'key_id',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  leaseOwner: 'lease_owner',
  leaseUntil: 'lease_until',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  confirmedAt: 'confirmed_at',
  storedAt: 'stored_at',
  activatedAt: 'activated_at',
  jumioDeletedAt: 'jumio_deleted_at',
  supersededAt: 'superseded_at',
  blobDestroyedAt: 'blob_destroyed_at',
  lastInteractionAt: 'last_interaction_at',
  purposeSatisfiedAt: 'purpose_satisfied_at',
  erasedAt: 'erased_at',
  erasureId: 'erasure_id',
  stateBeforeErasure: 'state_before_erasure',
} as const satisfies Record<keyof EnrollmentRecord, string>;

type Field = keyof EnrollmentRecord;

/** Enrollments whose facemap the vault holds (core/enrollment/pipeline.ts HOLDING_STATES). */
const HOLDING = `state IN ('STORED','ACTIVE','PARKED') AND blob_key IS NOT NULL`;
const FIELDS = Object.keys(ENROLLMENT_COLUMNS) as Field[];

function toEnrollment(row: Record<string, unknown>): EnrollmentRecord {
  const record = {} as Record<Field, unknown>;
  for (const field of FIELDS) record[field] = row[ENROLLMENT_COLUMNS[field]] ?? null;
  // int columns come back as numbers from both drivers, but be explicit.
  record.attempts = Number(record.attempts ?? 0);
  if (record.facemapBytes !== null) record.facemapBytes = Number(record.facemapBytes);
  return record as EnrollmentRecord;
}

class SqlEnrollmentRepository implements EnrollmentRepository {
  constructor(private readonly sql: SqlClient) {}

  async insert(e: NewEnrollment, now: Date): Promise<boolean> {
    const fields = Object.keys(e) as Array<keyof NewEnrollment>;
    const columns = [...fields.map((f) => ENROLLMENT_COLUMNS[f]), 'created_at', 'updated_at'];
    const values = [...fields.map((f) => e[f]), now, now];
    const { rowCount } = await this.sql.query(
      `INSERT INTO enrollments (${columns.join(', ')})
       VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})
       ON CONFLICT (enrollment_reference) DO NOTHING`,
      values,
    );
    return rowCount === 1;
  }

  async insertMany(enrollments: NewEnrollment[], now: Date): Promise<Set<string>> {
    if (enrollments.length === 0) return new Set();
    const fields = Object.keys(enrollments[0]!) as Array<keyof NewEnrollment>;
    const columns = [...fields.map((f) => ENROLLMENT_COLUMNS[f]), 'created_at', 'updated_at'];
    const rows = enrollments.map((e) =>
      Object.fromEntries([
        ...fields.map((f) => [ENROLLMENT_COLUMNS[f], e[f]]),
        ['created_at', now],
        ['updated_at', now],
      ]),
    );
    // One statement: the rows from one JSON array typed by the table itself, inserted in
    // reference order (two concurrent groups lock the same references in the same order).
    const { rows: inserted } = await this.sql.query<{ enrollment_reference: string }>(
      `INSERT INTO enrollments (${columns.join(', ')})
       SELECT ${columns.join(', ')} FROM jsonb_populate_recordset(NULL::enrollments, $1::jsonb)
        ORDER BY enrollment_reference
       ON CONFLICT (enrollment_reference) DO NOTHING
       RETURNING enrollment_reference`,
      [JSON.stringify(rows)],
    );
    return new Set(inserted.map((r) => r.enrollment_reference));
  }

  async get(ref: string, options: { forUpdate?: boolean } = {}): Promise<EnrollmentRecord | null> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM enrollments WHERE enrollment_reference = $1${options.forUpdate ? ROW_LOCK : ''}`,
      [ref],
    );
    return rows[0] ? toEnrollment(rows[0]) : null;
  }

  async listByUser(userReference: string): Promise<EnrollmentRecord[]> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM enrollments WHERE user_reference = $1
        ORDER BY created_at DESC, enrollment_reference`,
      [userReference],
    );
    return rows.map(toEnrollment);
  }

  async findActive(
    userReference: string,
    options: { forUpdate?: boolean } = {},
  ): Promise<EnrollmentRecord | null> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM enrollments WHERE user_reference = $1 AND state = 'ACTIVE'${options.forUpdate ? ROW_LOCK : ''}`,
      [userReference],
    );
    return rows[0] ? toEnrollment(rows[0]) : null;
  }

  async countByState(): Promise<Partial<Record<EnrollmentState, number>>> {
    const { rows } = await this.sql.query<{ state: EnrollmentState; n: string | number }>(
      'SELECT state, count(*) AS n FROM enrollments GROUP BY state',
    );
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  async getMany(references: string[]): Promise<EnrollmentRecord[]> {
    if (references.length === 0) return [];
    const { rows } = await this.sql.query<Record<string, unknown>>(
      'SELECT * FROM enrollments WHERE enrollment_reference = ANY($1::text[])',
      [references],
    );
    return rows.map(toEnrollment);
  }

  async leaseUnderKeys(
    keyIds: readonly string[],
    owner: string,
    now: Date,
    leaseMs: number,
    skip: readonly string[],
  ): Promise<EnrollmentRecord | null> {
    if (keyIds.length === 0) return null;
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `UPDATE enrollments
          SET lease_owner = $1, lease_until = $2::timestamptz + make_interval(secs => $3 / 1000.0)
        WHERE enrollment_reference IN (
          SELECT enrollment_reference FROM enrollments
           WHERE ${HOLDING} AND key_id = ANY($4::text[])
             AND (lease_until IS NULL OR lease_until <= $2)
             AND NOT (enrollment_reference = ANY($5::text[]))
           LIMIT 1
           FOR UPDATE SKIP LOCKED)
        RETURNING *`,
      [owner, now, leaseMs, [...keyIds], [...skip]],
    );
    return rows[0] ? toEnrollment(rows[0]) : null;
  }

  async releaseLease(ref: string, owner: string): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      `UPDATE enrollments SET lease_owner = NULL, lease_until = NULL
        WHERE enrollment_reference = $1 AND lease_owner = $2`,
      [ref, owner],
    );
    return rowCount === 1;
  }

  async findUnderKey(keyId: string): Promise<EnrollmentRecord | null> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM enrollments WHERE ${HOLDING} AND key_id = $1 LIMIT 1`,
      [keyId],
    );
    return rows[0] ? toEnrollment(rows[0]) : null;
  }

  async update(
    ref: string,
    patch: EnrollmentPatch,
    now: Date,
    leaseOwner: string | null,
  ): Promise<boolean> {
    const fields = (Object.keys(patch) as Array<keyof EnrollmentPatch>).filter(
      (f) => patch[f] !== undefined && f in ENROLLMENT_COLUMNS,
    );
    const sets = fields.map((f, i) => `${ENROLLMENT_COLUMNS[f]} = $${i + 3}`);
    const params: unknown[] = [ref, now, ...fields.map((f) => patch[f])];
    let guard = '';
    if (leaseOwner !== null) {
      params.push(leaseOwner);
      guard = ` AND lease_owner = $${params.length}`;
    }
    const { rowCount } = await this.sql.query(
      `UPDATE enrollments SET ${[...sets, 'updated_at = $2'].join(', ')}
        WHERE enrollment_reference = $1${guard}`,
      params,
    );
    return rowCount === 1;
  }
}

class SqlIntentRepository implements EnrollmentIntentRepository {
  constructor(private readonly sql: SqlClient) {}

  async register(intent: Omit<EnrollmentIntent, 'createdAt'>): Promise<EnrollmentIntent> {
    await this.sql.query(
      `INSERT INTO enrollment_intents (enrollment_reference, user_reference, registered_by)
       VALUES ($1, $2, $3) ON CONFLICT (enrollment_reference) DO NOTHING`,
      [intent.enrollmentReference, intent.userReference, intent.registeredBy],
    );
    return (await this.get(intent.enrollmentReference))!;
  }

  async get(ref: string): Promise<EnrollmentIntent | null> {
    return (await this.getMany([ref]))[0] ?? null;
  }

  async getMany(refs: string[]): Promise<EnrollmentIntent[]> {
    if (refs.length === 0) return [];
    const { rows } = await this.sql.query<{
      enrollment_reference: string;
      user_reference: string;
      registered_by: string;
      created_at: Date;
    }>('SELECT * FROM enrollment_intents WHERE enrollment_reference = ANY($1::text[])', [refs]);
    return rows.map((row) => ({
      enrollmentReference: row.enrollment_reference,
      userReference: row.user_reference,
      registeredBy: row.registered_by,
      createdAt: row.created_at,
    }));
  }
}

class SqlAuthenticationCallbackRepository implements AuthenticationCallbackRepository {
  constructor(private readonly sql: SqlClient) {}

  async record(c: AuthenticationCallbackRecord): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      `INSERT INTO authentication_callbacks
         (authentication_reference, transaction_result, enrollment_reference, transaction_date,
          callback_date, scan_source, source_address)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (authentication_reference, transaction_result) DO NOTHING`,
      [
        c.authenticationReference,
        c.transactionResult,
        c.enrollmentReference,
        c.transactionDate,
        c.callbackDate,
        c.scanSource,
        c.sourceAddress,
      ],
    );
    return rowCount === 1;
  }

  async listFor(authenticationReference: string): Promise<AuthenticationCallbackRecord[]> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM authentication_callbacks WHERE authentication_reference = $1
        ORDER BY received_at, transaction_result`,
      [authenticationReference],
    );
    return rows.map((r) => ({
      authenticationReference: r.authentication_reference as string,
      transactionResult: r.transaction_result as string,
      enrollmentReference: (r.enrollment_reference as string | null) ?? null,
      transactionDate: (r.transaction_date as Date | null) ?? null,
      callbackDate: (r.callback_date as Date | null) ?? null,
      scanSource: (r.scan_source as string | null) ?? null,
      sourceAddress: (r.source_address as string | null) ?? null,
    }));
  }
}

/** Record field -> column, for tables read and patched field by field. */
type Columns<T> = { readonly [K in keyof T]-?: string };

function fromRow<T>(columns: Columns<T>, row: Record<string, unknown>, ints: Array<keyof T>): T {
  const record = {} as Record<keyof T, unknown>;
  for (const field of Object.keys(columns) as Array<keyof T>) {
    record[field] = row[columns[field]] ?? null;
  }
  for (const field of ints) if (record[field] !== null) record[field] = Number(record[field]);
  return record as T;
}

/** INSERT of the given fields plus created_at and updated_at. */
function insertRow<T extends object>(
  sql: SqlClient,
  table: string,
  columns: Columns<T>,
  values: Partial<T>,
  now: Date,
  suffix = '',
) {
  const fields = (Object.keys(values) as Array<keyof T>).filter((f) => values[f] !== undefined);
  const names = [...fields.map((f) => columns[f]), 'created_at', 'updated_at'];
  return sql.query(
    `INSERT INTO ${table} (${names.join(', ')})
     VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})${suffix}`,
    [...fields.map((f) => values[f]), now, now],
  );
}

/** UPDATE of the patched fields (the column map is the allowlist), always setting updated_at. */
async function updateRow<T extends object>(
  sql: SqlClient,
  table: string,
  columns: Columns<T>,
  key: { column: string; value: string },
  patch: Partial<T>,
  now: Date,
): Promise<boolean> {
  const fields = (Object.keys(patch) as Array<keyof T>).filter(
    (f) => patch[f] !== undefined && f in columns,
  );
  const sets = fields.map((f, i) => `${columns[f]} = $${i + 3}`);
  const { rowCount } = await sql.query(
    `UPDATE ${table} SET ${[...sets, 'updated_at = $2'].join(', ')} WHERE ${key.column} = $1`,
    [key.value, now, ...fields.map((f) => patch[f])],
  );
  return rowCount === 1;
}

/** `AND (created_at, key) < (after)` for a newest-first keyset page. */
function keysetBefore(keyColumn: string, after: ListPosition | undefined, params: unknown[]) {
  if (!after) return '';
  params.push(after.createdAt, after.key);
  return ` AND (created_at, ${keyColumn}) < ($${params.length - 1}, $${params.length})`;
}

const AUTHENTICATION_COLUMNS: Columns<AuthenticationRecord> = {
  authenticationReference: 'authentication_reference',
  enrollmentReference: 'enrollment_reference',
  userReference: 'user_reference',
  state: 'state',
  reason: 'reason',
  source: 'source',
  purpose: 'purpose',
  requestedBy: 'requested_by',
  redirectUrl: 'redirect_url',
  notifyUrl: 'notify_url',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  expiresAt: 'expires_at',
  finalizedAt: 'finalized_at',
  jumioDeletedAt: 'jumio_deleted_at',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  leaseOwner: 'lease_owner',
  leaseUntil: 'lease_until',
};

const toAuthentication = (row: Record<string, unknown>) =>
  fromRow(AUTHENTICATION_COLUMNS, row, ['attempts']);

class SqlAuthenticationRepository implements AuthenticationRepository {
  constructor(private readonly sql: SqlClient) {}

  async insert(a: NewAuthentication, now: Date): Promise<void> {
    await insertRow(this.sql, 'authentications', AUTHENTICATION_COLUMNS, a, now);
  }

  async get(
    ref: string,
    options: { forUpdate?: boolean } = {},
  ): Promise<AuthenticationRecord | null> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM authentications WHERE authentication_reference = $1${options.forUpdate ? ROW_LOCK : ''}`,
      [ref],
    );
    return rows[0] ? toAuthentication(rows[0]) : null;
  }

  async list(filter: Parameters<AuthenticationRepository['list']>[0]) {
    const params: unknown[] = [filter.userReference ?? null, filter.state ?? null];
    const page = keysetBefore('authentication_reference', filter.after, params);
    params.push(filter.limit);
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM authentications
        WHERE ($1::text IS NULL OR user_reference = $1)
          AND ($2::text IS NULL OR state = $2)${page}
        ORDER BY created_at DESC, authentication_reference DESC
        LIMIT $${params.length}`,
      params,
    );
    return rows.map(toAuthentication);
  }

  async listLive(enrollmentReference: string, now: Date): Promise<AuthenticationRecord[]> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM authentications
        WHERE enrollment_reference = $1 AND state = 'INITIATED' AND expires_at > $2
        ORDER BY created_at, authentication_reference${ROW_LOCK}`,
      [enrollmentReference, now],
    );
    return rows.map(toAuthentication);
  }

  async countSince(userReference: string, since: Date) {
    const { rows } = await this.sql.query<{ n: string | number; oldest: Date | null }>(
      `SELECT count(*) AS n, min(created_at) AS oldest FROM authentications
        WHERE user_reference = $1 AND created_at > $2`,
      [userReference, since],
    );
    return { count: Number(rows[0]?.n ?? 0), oldest: rows[0]?.oldest ?? null };
  }

  update(ref: string, patch: AuthenticationPatch, now: Date): Promise<boolean> {
    const key = { column: 'authentication_reference', value: ref };
    return updateRow(this.sql, 'authentications', AUTHENTICATION_COLUMNS, key, patch, now);
  }

  async claimInitiation(
    enrollmentReference: string,
    owner: string,
    now: Date,
    ttlMs: number,
  ): Promise<boolean> {
    const { rows } = await this.sql.query(
      `INSERT INTO authentication_initiations (enrollment_reference, owner, claimed_until)
       VALUES ($1, $2, $3::timestamptz + make_interval(secs => $4 / 1000.0))
       ON CONFLICT (enrollment_reference) DO UPDATE
         SET owner = EXCLUDED.owner, claimed_until = EXCLUDED.claimed_until
         WHERE authentication_initiations.claimed_until <= $3
       RETURNING owner`,
      [enrollmentReference, owner, now, ttlMs],
    );
    return rows.length === 1;
  }

  async releaseInitiation(enrollmentReference: string, owner: string): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      'DELETE FROM authentication_initiations WHERE enrollment_reference = $1 AND owner = $2',
      [enrollmentReference, owner],
    );
    return rowCount === 1;
  }

  async initiationLive(enrollmentReference: string, now: Date): Promise<boolean> {
    const { rows } = await this.sql.query(
      `SELECT 1 FROM authentication_initiations
        WHERE enrollment_reference = $1 AND claimed_until > $2`,
      [enrollmentReference, now],
    );
    return rows.length > 0;
  }
}

interface IdempotencyRow {
  api_key_name: string;
  idempotency_key: string;
  request_sha256: string;
  response: Record<string, unknown> | null;
  created_at: Date;
  expires_at: Date;
}

const toIdempotency = (row: IdempotencyRow): IdempotencyRecord => ({
  apiKeyName: row.api_key_name,
  key: row.idempotency_key,
  requestSha256: row.request_sha256,
  response: row.response,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
});

class SqlIdempotencyRepository implements IdempotencyRepository {
  constructor(private readonly sql: SqlClient) {}

  async begin(
    input: { apiKeyName: string; key: string; requestSha256: string },
    now: Date,
    ttlMs: number,
  ) {
    // A concurrent twin waits here on the primary key until the first commits, then sees it.
    const { rows } = await this.sql.query<IdempotencyRow>(
      `INSERT INTO idempotency_keys
         (api_key_name, idempotency_key, request_sha256, response, created_at, expires_at)
       VALUES ($1, $2, $3, NULL, $4, $4::timestamptz + make_interval(secs => $5 / 1000.0))
       ON CONFLICT (api_key_name, idempotency_key) DO UPDATE
         SET request_sha256 = EXCLUDED.request_sha256, response = NULL,
             created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
         WHERE idempotency_keys.expires_at <= $4
       RETURNING *`,
      [input.apiKeyName, input.key, input.requestSha256, now, ttlMs],
    );
    if (rows[0]) return { record: toIdempotency(rows[0]), created: true };
    const existing = await this.sql.query<IdempotencyRow>(
      'SELECT * FROM idempotency_keys WHERE api_key_name = $1 AND idempotency_key = $2',
      [input.apiKeyName, input.key],
    );
    return { record: toIdempotency(existing.rows[0]!), created: false };
  }

  async complete(apiKeyName: string, key: string, response: Record<string, unknown>) {
    await this.sql.query(
      `UPDATE idempotency_keys SET response = $3::jsonb
        WHERE api_key_name = $1 AND idempotency_key = $2`,
      [apiKeyName, key, JSON.stringify(response)],
    );
  }

  async release(apiKeyName: string, key: string) {
    await this.sql.query(
      `DELETE FROM idempotency_keys
        WHERE api_key_name = $1 AND idempotency_key = $2 AND response IS NULL`,
      [apiKeyName, key],
    );
  }

  async purgeExpired(now: Date, limit: number): Promise<number> {
    const { rowCount } = await this.sql.query(
      `DELETE FROM idempotency_keys WHERE (api_key_name, idempotency_key) IN (
         SELECT api_key_name, idempotency_key FROM idempotency_keys
          WHERE expires_at <= $1 LIMIT $2)`,
      [now, limit],
    );
    return rowCount;
  }
}

const NOTIFICATION_COLUMNS: Columns<NotificationRecord> = {
  id: 'id',
  type: 'type',
  authenticationReference: 'authentication_reference',
  url: 'url',
  payload: 'payload',
  state: 'state',
  deliverUntil: 'deliver_until',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  lastStatus: 'last_status',
  leaseOwner: 'lease_owner',
  leaseUntil: 'lease_until',
  deliveredAt: 'delivered_at',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};

const toNotification = (row: Record<string, unknown>) =>
  fromRow(NOTIFICATION_COLUMNS, row, ['attempts', 'lastStatus']);

class SqlNotificationRepository implements NotificationRepository {
  constructor(private readonly sql: SqlClient) {}

  async insert(n: NewNotification, now: Date): Promise<void> {
    const row: Partial<NotificationRecord> = { ...n, state: 'PENDING' };
    await insertRow(this.sql, 'notifications', NOTIFICATION_COLUMNS, row, now);
  }

  async get(id: string, options: { forUpdate?: boolean } = {}) {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM notifications WHERE id = $1${options.forUpdate ? ROW_LOCK : ''}`,
      [id],
    );
    return rows[0] ? toNotification(rows[0]) : null;
  }

  async list(filter: Parameters<NotificationRepository['list']>[0]) {
    const params: unknown[] = [filter.state ?? null, filter.authenticationReference ?? null];
    let page = '';
    if (filter.after) {
      params.push(filter.after.createdAt, filter.after.key);
      page = ` AND (created_at, id) > ($${params.length - 1}, $${params.length})`;
    }
    params.push(filter.limit);
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM notifications
        WHERE ($1::text IS NULL OR state = $1)
          AND ($2::text IS NULL OR authentication_reference = $2)${page}
        ORDER BY created_at, id
        LIMIT $${params.length}`,
      params,
    );
    return rows.map(toNotification);
  }

  update(id: string, patch: NotificationPatch, now: Date): Promise<boolean> {
    const key = { column: 'id', value: id };
    return updateRow(this.sql, 'notifications', NOTIFICATION_COLUMNS, key, patch, now);
  }
}

interface VaultKeyRow {
  name: string;
  ciphertext: Uint8Array;
  key_id: string | null;
  created_at: Date;
  updated_at: Date | null;
}

const toVaultKey = (r: VaultKeyRow): VaultKeyRecord => ({
  name: r.name,
  ciphertext: new Uint8Array(r.ciphertext),
  keyId: r.key_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

class SqlVaultKeyRepository implements VaultKeyRepository {
  constructor(private readonly sql: SqlClient) {}

  async putIfAbsent(name: string, ciphertext: Uint8Array, keyId?: string): Promise<Uint8Array> {
    await this.sql.query(
      `INSERT INTO vault_keys (name, ciphertext, key_id) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO NOTHING`,
      [name, Buffer.from(ciphertext), keyId ?? null],
    );
    const { rows } = await this.sql.query<{ ciphertext: Uint8Array }>(
      'SELECT ciphertext FROM vault_keys WHERE name = $1',
      [name],
    );
    return new Uint8Array(rows[0]!.ciphertext);
  }

  async get(name: string, options: { forUpdate?: boolean } = {}): Promise<VaultKeyRecord | null> {
    const { rows } = await this.sql.query<VaultKeyRow>(
      `SELECT * FROM vault_keys WHERE name = $1${options.forUpdate ? ROW_LOCK : ''}`,
      [name],
    );
    return rows[0] ? toVaultKey(rows[0]) : null;
  }

  async list(): Promise<VaultKeyRecord[]> {
    const { rows } = await this.sql.query<VaultKeyRow>('SELECT * FROM vault_keys ORDER BY name');
    return rows.map(toVaultKey);
  }

  async recordKeyId(name: string, keyId: string): Promise<void> {
    await this.sql.query('UPDATE vault_keys SET key_id = $2 WHERE name = $1 AND key_id IS NULL', [
      name,
      keyId,
    ]);
  }

  async replace(name: string, ciphertext: Uint8Array, keyId: string, now: Date): Promise<void> {
    await this.sql.query(
      'UPDATE vault_keys SET ciphertext = $2, key_id = $3, updated_at = $4 WHERE name = $1',
      [name, Buffer.from(ciphertext), keyId, now],
    );
  }
}

/**
 * Each queue of background work is a table with the same lease columns. `due` names the
 * rows that have work at all; it matches the table's partial index, so a claim reads the
 * index, not the table.
 */
const QUEUE_TABLES: Record<QueueName, { table: string; key: string; due: string }> = {
  enrollments: {
    table: 'enrollments',
    key: 'enrollment_reference',
    due: `(state IN ('PENDING','STORED')
           OR (state = 'SUPERSEDED' AND blob_key IS NOT NULL AND blob_destroyed_at IS NULL))`,
  },
  schedules: { table: 'schedules', key: 'name', due: 'TRUE' },
  authentications: {
    table: 'authentications',
    key: 'authentication_reference',
    due: 'next_attempt_at IS NOT NULL',
  },
  notifications: { table: 'notifications', key: 'id', due: `state = 'PENDING'` },
  erasures: { table: 'erasures', key: 'erasure_id', due: "state = 'PENDING'" },
};

class SqlQueueRepository implements QueueRepository {
  constructor(private readonly sql: SqlClient) {}

  async claim(queue: QueueName, owner: string, now: Date, leaseMs: number, dueBy: Date = now) {
    const { table, key, due } = QUEUE_TABLES[queue];
    const { rows } = await this.sql.query<{ key: string }>(
      `UPDATE ${table}
          SET lease_owner = $1, lease_until = $2::timestamptz + make_interval(secs => $3 / 1000.0)
        WHERE ${key} IN (
          SELECT ${key} FROM ${table}
           WHERE ${due}
             AND next_attempt_at <= $4
             AND (lease_until IS NULL OR lease_until <= $2)
           ORDER BY next_attempt_at
           LIMIT 1
           FOR UPDATE SKIP LOCKED)
        RETURNING ${key} AS key`,
      [owner, now, leaseMs, dueBy],
    );
    return rows[0]?.key ?? null;
  }

  async holds(queue: QueueName, keyValue: string, owner: string): Promise<boolean> {
    const { table, key } = QUEUE_TABLES[queue];
    const { rows } = await this.sql.query<{ lease_owner: string | null }>(
      `SELECT lease_owner FROM ${table} WHERE ${key} = $1${ROW_LOCK}`,
      [keyValue],
    );
    return rows[0]?.lease_owner === owner;
  }

  async settle(queue: QueueName, keyValue: string, s: QueueSchedule, now: Date): Promise<void> {
    const { table, key } = QUEUE_TABLES[queue];
    await this.sql.query(
      `UPDATE ${table}
          SET attempts = $2, next_attempt_at = $3, last_error = $4,
              lease_owner = NULL, lease_until = NULL, updated_at = $5
        WHERE ${key} = $1`,
      [keyValue, s.attempts, s.nextAttemptAt, s.lastError, now],
    );
  }

  async stats(queue: QueueName, now: Date): Promise<QueueStats> {
    const { table, due } = QUEUE_TABLES[queue];
    const { rows } = await this.sql.query<{
      due: string | number;
      leased: string | number;
      oldest: Date | null;
    }>(
      `SELECT count(*) FILTER (WHERE waiting) AS due,
              count(*) FILTER (WHERE lease_until > $1) AS leased,
              min(next_attempt_at) FILTER (WHERE waiting) AS oldest
         FROM (SELECT next_attempt_at, lease_until,
                      next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) AS waiting
                 FROM ${table}
                WHERE ${due} AND next_attempt_at IS NOT NULL) q`,
      [now],
    );
    const row = rows[0];
    return {
      due: Number(row?.due ?? 0),
      leased: Number(row?.leased ?? 0),
      oldestDueAt: row?.oldest ?? null,
    };
  }
}

class SqlScheduleRepository implements ScheduleRepository {
  constructor(private readonly sql: SqlClient) {}

  async ensure(name: string, firstRunAt: Date): Promise<void> {
    await this.sql.query(
      `INSERT INTO schedules (name, next_attempt_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
      [name, firstRunAt],
    );
  }

  async get(name: string): Promise<ScheduleRecord | null> {
    const { rows } = await this.sql.query<{
      name: string;
      attempts: number;
      next_attempt_at: Date | null;
      last_error: string | null;
      progress: Record<string, unknown>;
      last_completed_at: Date | null;
    }>('SELECT * FROM schedules WHERE name = $1', [name]);
    const row = rows[0];
    return row
      ? {
          name: row.name,
          attempts: Number(row.attempts),
          nextAttemptAt: row.next_attempt_at,
          lastError: row.last_error,
          progress: row.progress,
          lastCompletedAt: row.last_completed_at,
        }
      : null;
  }

  async saveProgress(
    name: string,
    progress: Record<string, unknown>,
    completedAt: Date | null,
  ): Promise<void> {
    await this.sql.query(
      `UPDATE schedules SET progress = $2::jsonb,
              last_completed_at = COALESCE($3, last_completed_at)
        WHERE name = $1`,
      [name, JSON.stringify(progress), completedAt],
    );
  }
}

/** The last interaction: the authentication work's, else the activation (issue 9). */
const LAST_INTERACTION = 'COALESCE(e.last_interaction_at, e.activated_at)';
/**
 * BIPA's deadline: the earlier of "purpose satisfied" and the last interaction plus the
 * retention period (an enrollment never activated counts from when it was stored or
 * received). `$1` is the retention period in days.
 */
const RETENTION_DUE = `LEAST(e.purpose_satisfied_at,
  COALESCE(e.last_interaction_at, e.activated_at, e.stored_at, e.created_at)
    + make_interval(days => $1::int))`;

/** `YYYY-MM` of a timestamptz expression, in UTC whatever the session's time zone. */
const UTC_MONTH = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM')`;

/** What an inventory row shows (the read view): fewer columns to parse per row. */
const INVENTORY_COLUMNS = [
  'enrollment_reference',
  'user_reference',
  'state',
  'reason',
  'created_at',
  'stored_at',
  'activated_at',
  'jumio_deleted_at',
  'facemap_bytes',
  'ciphertext_sha256',
  'key_id',
  'attempts',
  'last_error',
  'erased_at',
]
  .map((c) => `e.${c}`)
  .join(', ');

type InventoryRow = Record<string, unknown> & {
  created_at_text: string;
  last_interaction: Date | null;
  retention_due_at: Date;
  legal_hold: boolean;
};

class SqlInventoryRepository implements InventoryRepository {
  constructor(private readonly sql: SqlClient) {}

  async page(
    filter: InventoryFilter,
    after: InventoryPosition | null,
    limit: number,
    retentionDays: number,
  ): Promise<InventoryItem[]> {
    // Only the clauses in use, so the planner walks the (created_at, reference) index.
    const params: unknown[] = [retentionDays];
    const where: string[] = [];
    const add = (clause: (p: string) => string, value: unknown) => {
      params.push(value);
      where.push(clause(`$${params.length}`));
    };
    if (filter.state) add((p) => `e.state = ${p}`, filter.state);
    if (filter.createdAfter) add((p) => `e.created_at >= ${p}`, filter.createdAfter);
    if (filter.createdBefore) add((p) => `e.created_at < ${p}`, filter.createdBefore);
    if (filter.retentionDueBefore) {
      add((p) => `${RETENTION_DUE} < ${p}`, filter.retentionDueBefore);
    }
    if (filter.legalHold !== undefined) {
      add((p) => `(h.user_reference IS NOT NULL) = ${p}`, filter.legalHold);
    }
    if (after) {
      params.push(after.createdAt, after.enrollmentReference);
      where.push(
        `(e.created_at, e.enrollment_reference) > ($${params.length - 1}::timestamptz, $${params.length})`,
      );
    }
    params.push(limit);
    const { rows } = await this.sql.query<InventoryRow>(
      `SELECT ${INVENTORY_COLUMNS}, e.created_at::text AS created_at_text,
              ${LAST_INTERACTION} AS last_interaction,
              ${RETENTION_DUE} AS retention_due_at,
              (h.user_reference IS NOT NULL) AS legal_hold
         FROM enrollments e LEFT JOIN legal_holds h ON h.user_reference = e.user_reference
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY e.created_at, e.enrollment_reference
        LIMIT $${params.length}`,
      params,
    );
    return rows.map((row) => ({
      enrollment: toEnrollment(row),
      lastInteractionAt: row.last_interaction,
      retentionDueAt: row.retention_due_at,
      legalHold: row.legal_hold,
      position: {
        createdAt: row.created_at_text,
        enrollmentReference: row.enrollment_reference as string,
      },
    }));
  }

  async summary(now: Date, retentionDays: number): Promise<InventorySummary> {
    const { rows: states } = await this.sql.query<{ state: EnrollmentState; n: string }>(
      'SELECT state, count(*) AS n FROM enrollments GROUP BY state ORDER BY state',
    );
    const { rows: totals } = await this.sql.query<{
      past: string;
      soon: string;
      bytes: string | null;
      holds: string;
    }>(
      `SELECT count(*) FILTER (WHERE due <= $2) AS past,
              count(*) FILTER (WHERE due > $2 AND due <= $2::timestamptz + interval '30 days') AS soon,
              sum(facemap_bytes) FILTER (WHERE holding) AS bytes,
              (SELECT count(*) FROM legal_holds) AS holds
         FROM (SELECT ${RETENTION_DUE} AS due, e.facemap_bytes,
                      e.state IN ('STORED','ACTIVE','PARKED') AS holding
                 FROM enrollments e WHERE e.state <> 'ERASED') q`,
      [retentionDays, now],
    );
    const { rows: oldest } = await this.sql.query<{
      enrollment_reference: string;
      activated_at: Date;
    }>(
      `SELECT enrollment_reference, activated_at FROM enrollments
        WHERE state = 'ACTIVE' ORDER BY activated_at, enrollment_reference LIMIT 1`,
    );
    const t = totals[0]!;
    return {
      byState: Object.fromEntries(states.map((r) => [r.state, Number(r.n)])),
      oldestActive: oldest[0]
        ? {
            enrollmentReference: oldest[0].enrollment_reference,
            activatedAt: oldest[0].activated_at,
          }
        : null,
      retentionPastDue: Number(t.past),
      retentionDueWithin30Days: Number(t.soon),
      legalHolds: Number(t.holds),
      facemapBytes: Number(t.bytes ?? 0),
      facemapsByKey: await this.facemapsByKey(),
    };
  }

  async facemapsByKey(): Promise<InventorySummary['facemapsByKey']> {
    const { rows } = await this.sql.query<{ key_id: string; n: string }>(
      `SELECT key_id, count(*) AS n FROM enrollments
        WHERE state IN ('STORED','ACTIVE','PARKED') AND key_id IS NOT NULL
        GROUP BY key_id ORDER BY key_id`,
    );
    return rows.map((r) => ({ keyId: r.key_id, facemaps: Number(r.n) }));
  }

  async retentionDue(now: Date, retentionDays: number, limit: number) {
    const { rows } = await this.sql.query<{ user_reference: string; refs: string[] }>(
      `SELECT e.user_reference, array_agg(e.enrollment_reference ORDER BY e.enrollment_reference) AS refs
         FROM enrollments e
        WHERE e.state <> 'ERASED' AND e.user_reference IS NOT NULL
          AND ${RETENTION_DUE} <= $2
          AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.user_reference = e.user_reference)
          AND NOT EXISTS (SELECT 1 FROM erasures x
                           WHERE x.user_reference = e.user_reference AND x.state = 'PENDING')
        GROUP BY e.user_reference
        ORDER BY min(${RETENTION_DUE}), e.user_reference
        LIMIT $3`,
      [retentionDays, now, limit],
    );
    return rows.map((r) => ({ userReference: r.user_reference, enrollmentReferences: r.refs }));
  }

  async markPurposeSatisfied(userReference: string, now: Date): Promise<number> {
    const { rowCount } = await this.sql.query(
      `UPDATE enrollments SET purpose_satisfied_at = $2, updated_at = $2
        WHERE user_reference = $1 AND state <> 'ERASED'
          AND (purpose_satisfied_at IS NULL OR purpose_satisfied_at > $2)`,
      [userReference, now],
    );
    return rowCount;
  }

  async facemapsByMonth(): Promise<Array<{ month: string; stored: number; destroyed: number }>> {
    // One pass over the table; the result has one row per month with activity.
    const ended = 'LEAST(blob_destroyed_at, erased_at)';
    const { rows } = await this.sql.query<{ month: string; stored: string; destroyed: string }>(
      `SELECT month, sum(stored) AS stored, sum(destroyed) AS destroyed
         FROM (SELECT ${UTC_MONTH('stored_at')} AS month, 1 AS stored, 0 AS destroyed
                 FROM enrollments WHERE stored_at IS NOT NULL
               UNION ALL
               SELECT ${UTC_MONTH(ended)}, 0, 1
                 FROM enrollments WHERE stored_at IS NOT NULL AND ${ended} IS NOT NULL) q
        GROUP BY month ORDER BY month`,
    );
    return rows.map((r) => ({
      month: r.month,
      stored: Number(r.stored),
      destroyed: Number(r.destroyed),
    }));
  }

  async retentionByMonth(from: Date, to: Date, retentionDays: number) {
    const { rows } = await this.sql.query<{ month: string; due: string; on_hold: string }>(
      `SELECT ${UTC_MONTH('due')} AS month, count(*) AS due, count(*) FILTER (WHERE held) AS on_hold
         FROM (SELECT ${RETENTION_DUE} AS due,
                      EXISTS (SELECT 1 FROM legal_holds h WHERE h.user_reference = e.user_reference) AS held
                 FROM enrollments e WHERE e.state <> 'ERASED') q
        WHERE due >= $2 AND due < $3
        GROUP BY 1 ORDER BY 1`,
      [retentionDays, from, to],
    );
    return rows.map((r) => ({ month: r.month, due: Number(r.due), onHold: Number(r.on_hold) }));
  }
}

interface LegalHoldRow {
  user_reference: string;
  reference: string;
  reason: string;
  placed_by: string;
  placed_at: Date;
}

function toLegalHold(r: LegalHoldRow): LegalHold {
  return {
    userReference: r.user_reference,
    reference: r.reference,
    reason: r.reason,
    placedBy: r.placed_by,
    placedAt: r.placed_at,
  };
}

class SqlLegalHoldRepository implements LegalHoldRepository {
  constructor(private readonly sql: SqlClient) {}

  async get(userReference: string, options: { forUpdate?: boolean } = {}) {
    const { rows } = await this.sql.query<LegalHoldRow>(
      `SELECT * FROM legal_holds WHERE user_reference = $1${options.forUpdate ? ROW_LOCK : ''}`,
      [userReference],
    );
    return rows[0] ? toLegalHold(rows[0]) : null;
  }

  async list(after: string | null, limit: number): Promise<LegalHold[]> {
    const { rows } = await this.sql.query<LegalHoldRow>(
      `SELECT * FROM legal_holds WHERE ($1::text IS NULL OR user_reference > $1)
        ORDER BY user_reference LIMIT $2`,
      [after, limit],
    );
    return rows.map(toLegalHold);
  }

  async put(hold: LegalHold): Promise<void> {
    await this.sql.query(
      `INSERT INTO legal_holds (user_reference, reference, reason, placed_by, placed_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_reference) DO UPDATE
         SET reference = $2, reason = $3, placed_by = $4, placed_at = $5`,
      [hold.userReference, hold.reference, hold.reason, hold.placedBy, hold.placedAt],
    );
  }

  async remove(userReference: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('DELETE FROM legal_holds WHERE user_reference = $1', [
      userReference,
    ]);
    return rowCount === 1;
  }
}

interface ErasureRow {
  erasure_id: string;
  user_reference: string;
  enrollment_references: string[];
  reason: ErasureReason;
  ticket: string | null;
  requested_by: string;
  state: 'PENDING' | 'DONE';
  blobs: ErasureBlob[];
  blob_keys_destroyed: string[] | null;
  requested_at: Date;
  erased_at: Date | null;
  audit_sequence: string | null;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
}

function toErasure(r: ErasureRow): ErasureRecord {
  return {
    erasureId: r.erasure_id,
    userReference: r.user_reference,
    enrollmentReferences: r.enrollment_references,
    reason: r.reason,
    ticket: r.ticket,
    requestedBy: r.requested_by,
    state: r.state,
    blobs: r.blobs,
    blobKeysDestroyed: r.blob_keys_destroyed,
    requestedAt: r.requested_at,
    erasedAt: r.erased_at,
    auditSequence: r.audit_sequence === null ? null : Number(r.audit_sequence),
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
  };
}

class SqlErasureRepository implements ErasureRepository {
  constructor(private readonly sql: SqlClient) {}

  async insert(
    e: Parameters<ErasureRepository['insert']>[0],
    lease?: { owner: string; until: Date },
  ): Promise<void> {
    await this.sql.query(
      `INSERT INTO erasures (erasure_id, user_reference, enrollment_references, reason, ticket,
         requested_by, state, blobs, requested_at, next_attempt_at, updated_at, lease_owner,
         lease_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $9, $11, $12)`,
      [
        e.erasureId,
        e.userReference,
        e.enrollmentReferences,
        e.reason,
        e.ticket,
        e.requestedBy,
        e.state,
        JSON.stringify(e.blobs),
        e.requestedAt,
        e.nextAttemptAt,
        lease?.owner ?? null,
        lease?.until ?? null,
      ],
    );
  }

  async get(erasureId: string): Promise<ErasureRecord | null> {
    const { rows } = await this.sql.query<ErasureRow>(
      'SELECT * FROM erasures WHERE erasure_id = $1',
      [erasureId],
    );
    return rows[0] ? toErasure(rows[0]) : null;
  }

  async latestForUser(userReference: string): Promise<ErasureRecord | null> {
    const { rows } = await this.sql.query<ErasureRow>(
      `SELECT * FROM erasures WHERE user_reference = $1
        ORDER BY state = 'PENDING' DESC, requested_at DESC, erasure_id LIMIT 1`,
      [userReference],
    );
    return rows[0] ? toErasure(rows[0]) : null;
  }

  async list(
    filter: { state?: ErasureRecord['state']; userReference?: string },
    before: { requestedAt: Date; erasureId: string } | null,
    limit: number,
  ): Promise<ErasureRecord[]> {
    const { rows } = await this.sql.query<ErasureRow>(
      `SELECT * FROM erasures
        WHERE ($1::text IS NULL OR state = $1)
          AND ($2::text IS NULL OR user_reference = $2)
          AND ($3::timestamptz IS NULL OR (requested_at, erasure_id) < ($3::timestamptz, $4::text))
        ORDER BY requested_at DESC, erasure_id DESC
        LIMIT $5`,
      [
        filter.state ?? null,
        filter.userReference ?? null,
        before?.requestedAt ?? null,
        before?.erasureId ?? null,
        limit,
      ],
    );
    return rows.map(toErasure);
  }

  async complete(
    erasureId: string,
    done: { blobKeysDestroyed: string[]; erasedAt: Date; auditSequence: number },
  ): Promise<void> {
    await this.sql.query(
      `UPDATE erasures SET state = 'DONE', blob_keys_destroyed = $2::jsonb, erased_at = $3,
              audit_sequence = $4, updated_at = $3
        WHERE erasure_id = $1`,
      [erasureId, JSON.stringify(done.blobKeysDestroyed), done.erasedAt, done.auditSequence],
    );
  }
}

/** A row lock taken after the audit chain head in one transaction (see `lockOrderGuard`). */
export class LockOrderError extends Error {
  override name = 'LockOrderError';
}

/**
 * The chain head is locked by a transaction's first audit entry until it commits, so every
 * other row lock must come before it: a transaction that locks a row after the head waits
 * for that row while holding the head, and deadlocks with one that holds the row and waits
 * for the head. This wrapper sees a row lock after the head and refuses it in tests
 * (NODE_ENV=test, which jest sets) so an ordering slip fails there; in production it lets
 * the query run (PostgreSQL breaks a real deadlock and the work is retried).
 */
function lockOrderGuard(sql: SqlClient): SqlClient {
  let headHeld = false;
  // Locks taken before the head: taking one of them again cannot wait on anyone.
  const held = new Set<string>();
  const strict = process.env.NODE_ENV === 'test';
  return {
    async query<R>(text: string, params?: unknown[]) {
      if (/FOR (NO KEY )?UPDATE/i.test(text)) {
        const lock = `${text}\u0000${JSON.stringify(params ?? [])}`;
        if (/FROM audit_chain_head/i.test(text)) headHeld = true;
        else if (!headHeld) held.add(lock);
        else if (strict && !held.has(lock)) {
          throw new LockOrderError(
            `a row lock after the audit chain head (take row locks before the first audit entry): ${text.slice(0, 120)}`,
          );
        }
      }
      return sql.query<R>(text, params);
    },
    exec: (text: string) => sql.exec(text),
  };
}

function ledgerTx(client: SqlClient): { tx: LedgerTx; audit: SqlAuditRepository } {
  const sql = lockOrderGuard(client);
  const audit = new SqlAuditRepository(sql);
  const tx: LedgerTx = {
    audit,
    enrollments: new SqlEnrollmentRepository(sql),
    intents: new SqlIntentRepository(sql),
    authenticationCallbacks: new SqlAuthenticationCallbackRepository(sql),
    authentications: new SqlAuthenticationRepository(sql),
    idempotency: new SqlIdempotencyRepository(sql),
    notifications: new SqlNotificationRepository(sql),
    vaultKeys: new SqlVaultKeyRepository(sql),
    queues: new SqlQueueRepository(sql),
    schedules: new SqlScheduleRepository(sql),
    auditDigests: new SqlAuditDigestRepository(sql),
    inventory: new SqlInventoryRepository(sql),
    legalHolds: new SqlLegalHoldRepository(sql),
    erasures: new SqlErasureRepository(sql),
  };
  return { tx, audit };
}

/** What the ledger holds encrypted: wrapped vault keys and live blobs, by key id. */
export interface HeldCiphertexts {
  vaultKeys: number;
  /** `not recorded`: written before vault_keys.key_id existed. */
  vaultKeysByKeyId: Record<string, number>;
  blobsByKeyId: Record<string, number>;
}

/** Read at start-up, before the envelope exists, to tell a new ledger from a keyed one. */
export async function heldCiphertexts(db: SqlClient): Promise<HeldCiphertexts> {
  const keys = await db.query<{ key_id: string | null; n: number }>(
    'SELECT key_id, count(*)::int AS n FROM vault_keys GROUP BY key_id ORDER BY key_id',
  );
  const blobs = await db.query<{ key_id: string | null; n: number }>(
    `SELECT key_id, count(*)::int AS n FROM enrollments
      WHERE blob_key IS NOT NULL AND blob_destroyed_at IS NULL GROUP BY key_id ORDER BY key_id`,
  );
  const blobsByKeyId: Record<string, number> = {};
  for (const row of blobs.rows) blobsByKeyId[row.key_id ?? 'unknown'] = Number(row.n);
  const vaultKeysByKeyId: Record<string, number> = {};
  for (const row of keys.rows) vaultKeysByKeyId[row.key_id ?? 'not recorded'] = Number(row.n);
  const vaultKeys = keys.rows.reduce((n, row) => n + Number(row.n), 0);
  return { vaultKeys, vaultKeysByKeyId, blobsByKeyId };
}

/** The Ledger port over either SQL driver: the same statements for pg and PGlite. */
export class SqlLedger implements Ledger {
  constructor(readonly db: SqlDatabase) {}

  transaction<T>(fn: (tx: LedgerTx) => Promise<T>): Promise<T> {
    return this.db.transaction(async (client) => {
      const { tx, audit } = ledgerTx(client);
      const result = await fn(tx);
      // Recorded audit entries: the last statement, so the chain head is held the least.
      await audit.writeRecorded();
      return result;
    });
  }

  async ping(): Promise<void> {
    try {
      await this.db.ping();
    } catch (error) {
      if (error instanceof DependencyError) throw error;
      throw new DependencyError('ledger', 'query failed', { cause: error });
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
