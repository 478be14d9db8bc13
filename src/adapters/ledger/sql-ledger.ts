import type {
  AuditEvent,
  AuditEventInput,
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
  VaultKeyRepository,
} from '../../core/ports';
import { DependencyError } from '../../core/errors';
import type { SqlClient, SqlDatabase } from './sql';

interface AuditRow {
  id: string | number;
  at: Date;
  type: string;
  actor: string;
  enrollment_reference: string | null;
  authentication_reference: string | null;
  user_reference: string | null;
  details: Record<string, unknown>;
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
  };
}

class SqlAuditRepository implements AuditRepository {
  constructor(private readonly sql: SqlClient) {}

  async append(event: AuditEventInput): Promise<AuditEvent> {
    const { rows } = await this.sql.query<AuditRow>(
      `INSERT INTO audit_events
         (type, actor, enrollment_reference, authentication_reference, user_reference, details)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       RETURNING *`,
      [
        event.type,
        event.actor,
        event.enrollmentReference ?? null,
        event.authenticationReference ?? null,
        event.userReference ?? null,
        JSON.stringify(event.details ?? {}),
      ],
    );
    return toAuditEvent(rows[0]!);
  }

  async list(filter: Parameters<AuditRepository['list']>[0] = {}): Promise<AuditEvent[]> {
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT * FROM audit_events
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
} as const satisfies Record<keyof EnrollmentRecord, string>;

type Field = keyof EnrollmentRecord;
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

  async get(ref: string, options: { forUpdate?: boolean } = {}): Promise<EnrollmentRecord | null> {
    const { rows } = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM enrollments WHERE enrollment_reference = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
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
      `SELECT * FROM enrollments WHERE user_reference = $1 AND state = 'ACTIVE'${options.forUpdate ? ' FOR UPDATE' : ''}`,
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
    const { rows } = await this.sql.query<{
      enrollment_reference: string;
      user_reference: string;
      registered_by: string;
      created_at: Date;
    }>('SELECT * FROM enrollment_intents WHERE enrollment_reference = $1', [ref]);
    const row = rows[0];
    return row
      ? {
          enrollmentReference: row.enrollment_reference,
          userReference: row.user_reference,
          registeredBy: row.registered_by,
          createdAt: row.created_at,
        }
      : null;
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
      `SELECT * FROM authentications WHERE authentication_reference = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
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
        ORDER BY created_at, authentication_reference
        FOR UPDATE`,
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
      `SELECT * FROM notifications WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
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

class SqlVaultKeyRepository implements VaultKeyRepository {
  constructor(private readonly sql: SqlClient) {}

  async putIfAbsent(name: string, ciphertext: Uint8Array): Promise<Uint8Array> {
    await this.sql.query(
      'INSERT INTO vault_keys (name, ciphertext) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
      [name, Buffer.from(ciphertext)],
    );
    const { rows } = await this.sql.query<{ ciphertext: Uint8Array }>(
      'SELECT ciphertext FROM vault_keys WHERE name = $1',
      [name],
    );
    return new Uint8Array(rows[0]!.ciphertext);
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
      `SELECT lease_owner FROM ${table} WHERE ${key} = $1 FOR UPDATE`,
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

function ledgerTx(sql: SqlClient): LedgerTx {
  return {
    audit: new SqlAuditRepository(sql),
    enrollments: new SqlEnrollmentRepository(sql),
    intents: new SqlIntentRepository(sql),
    authenticationCallbacks: new SqlAuthenticationCallbackRepository(sql),
    authentications: new SqlAuthenticationRepository(sql),
    idempotency: new SqlIdempotencyRepository(sql),
    notifications: new SqlNotificationRepository(sql),
    vaultKeys: new SqlVaultKeyRepository(sql),
    queues: new SqlQueueRepository(sql),
    schedules: new SqlScheduleRepository(sql),
  };
}

/** What the ledger holds encrypted: wrapped vault keys, and live blobs by key id. */
export interface HeldCiphertexts {
  vaultKeys: number;
  blobsByKeyId: Record<string, number>;
}

/** Read at start-up, before the envelope exists, to tell a new ledger from a keyed one. */
export async function heldCiphertexts(db: SqlClient): Promise<HeldCiphertexts> {
  const keys = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM vault_keys');
  const blobs = await db.query<{ key_id: string | null; n: number }>(
    `SELECT key_id, count(*)::int AS n FROM enrollments
      WHERE blob_key IS NOT NULL AND blob_destroyed_at IS NULL GROUP BY key_id`,
  );
  const blobsByKeyId: Record<string, number> = {};
  for (const row of blobs.rows) blobsByKeyId[row.key_id ?? 'unknown'] = Number(row.n);
  return { vaultKeys: Number(keys.rows[0]?.n ?? 0), blobsByKeyId };
}

/** The Ledger port over either SQL driver: the same statements for pg and PGlite. */
export class SqlLedger implements Ledger {
  constructor(readonly db: SqlDatabase) {}

  transaction<T>(fn: (tx: LedgerTx) => Promise<T>): Promise<T> {
    return this.db.transaction((client) => fn(ledgerTx(client)));
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
