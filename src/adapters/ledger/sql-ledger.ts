import type {
  AuditEvent,
  AuditEventInput,
  AuditRepository,
  AuthenticationCallbackRecord,
  AuthenticationCallbackRepository,
  EnrollmentIntent,
  EnrollmentIntentRepository,
  EnrollmentPatch,
  EnrollmentRecord,
  EnrollmentRepository,
  EnrollmentState,
  Ledger,
  LedgerTx,
  NewEnrollment,
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
