import type { SqlDatabase } from './sql';

/**
 * Versioned migrations. Append only: a migration that has landed is never edited, the
 * next change is a new version. Both PostgreSQL and PGlite run the same SQL.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'enrollments, authentications, audit events',
    sql: `
      CREATE TABLE enrollments (
        enrollment_reference text PRIMARY KEY,
        user_reference       text,
        state                text NOT NULL CHECK (state IN
                               ('PENDING','STORED','ACTIVE','REJECTED','FAILED','SUPERSEDED','ERASED')),
        reason               text,
        verification_status  text,
        similarity           text,
        validity             boolean,
        facemap_url          text,
        blob_key             text,
        facemap_bytes        integer,
        ciphertext_sha256    text,
        key_id               text,
        attempts             integer NOT NULL DEFAULT 0,
        next_attempt_at      timestamptz,
        last_error           text,
        created_at           timestamptz NOT NULL DEFAULT now(),
        updated_at           timestamptz NOT NULL DEFAULT now(),
        stored_at            timestamptz,
        activated_at         timestamptz,
        jumio_deleted_at     timestamptz,
        superseded_at        timestamptz
      );
      -- At most one ACTIVE facemap per person, enforced where replicas cannot race it.
      CREATE UNIQUE INDEX enrollments_one_active_per_user
        ON enrollments (user_reference) WHERE state = 'ACTIVE';
      CREATE INDEX enrollments_due ON enrollments (next_attempt_at)
        WHERE state IN ('PENDING','STORED');
      CREATE INDEX enrollments_by_user ON enrollments (user_reference);

      CREATE TABLE authentications (
        authentication_reference text PRIMARY KEY,
        enrollment_reference     text NOT NULL REFERENCES enrollments (enrollment_reference),
        user_reference           text NOT NULL,
        state                    text NOT NULL CHECK (state IN
                                   ('INITIATED','PASSED','FAILED','INVALID','EXPIRED')),
        requested_by             text NOT NULL,
        purpose                  text NOT NULL,
        redirect_url             text,
        created_at               timestamptz NOT NULL DEFAULT now(),
        updated_at               timestamptz NOT NULL DEFAULT now(),
        completed_at             timestamptz
      );
      CREATE INDEX authentications_by_enrollment ON authentications (enrollment_reference, created_at);

      CREATE TABLE audit_events (
        id                       bigserial PRIMARY KEY,
        at                       timestamptz NOT NULL DEFAULT now(),
        type                     text NOT NULL,
        actor                    text NOT NULL,
        enrollment_reference     text,
        authentication_reference text,
        user_reference           text,
        details                  jsonb NOT NULL DEFAULT '{}'::jsonb
      );
      CREATE INDEX audit_events_by_enrollment ON audit_events (enrollment_reference, id);
      CREATE INDEX audit_events_by_user ON audit_events (user_reference, id);

      -- The trail is append-only for the application role; the tamper-evident chain on
      -- top of it comes with the compliance work.
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
    `,
  },
  {
    version: 2,
    name: 'enrollment pipeline: intake fields, leases, intents, vault keys',
    sql: `
      ALTER TABLE enrollments
        ADD COLUMN verification_reason  text,
        ADD COLUMN callback_facemap_url text,
        ADD COLUMN scan_source          text,
        ADD COLUMN source_address       text,
        ADD COLUMN transaction_date     timestamptz,
        ADD COLUMN callback_date        timestamptz,
        ADD COLUMN confirmed_at         timestamptz,
        ADD COLUMN blob_destroyed_at    timestamptz,
        ADD COLUMN lease_owner          text,
        ADD COLUMN lease_until          timestamptz;
      DROP INDEX enrollments_due;
      -- What the workers scan: work in flight, and superseded blobs still to destroy.
      CREATE INDEX enrollments_due ON enrollments (next_attempt_at)
        WHERE state IN ('PENDING','STORED')
           OR (state = 'SUPERSEDED' AND blob_key IS NOT NULL AND blob_destroyed_at IS NULL);

      -- ENROLLMENT_BINDING=intent: scan references an internal service announced first.
      CREATE TABLE enrollment_intents (
        enrollment_reference text PRIMARY KEY,
        user_reference       text NOT NULL,
        registered_by        text NOT NULL,
        created_at           timestamptz NOT NULL DEFAULT now()
      );

      -- Secrets the vault generates once and keeps only wrapped by the envelope key.
      CREATE TABLE vault_keys (
        name       text PRIMARY KEY,
        ciphertext bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      -- Authentication callbacks are kept (allowlisted fields) for the authentication work.
      CREATE TABLE authentication_callbacks (
        authentication_reference text NOT NULL,
        transaction_result       text NOT NULL,
        enrollment_reference     text,
        transaction_date         timestamptz,
        callback_date            timestamptz,
        scan_source              text,
        source_address           text,
        received_at              timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (authentication_reference, transaction_result)
      );
    `,
  },
];

/** Arbitrary but fixed: every replica contends for the same advisory lock. */
const MIGRATION_LOCK_KEY = 7_340_021_911;

/**
 * Applies the pending migrations in order, in one transaction under a transaction-scoped
 * advisory lock, so replicas that start together apply each version exactly once.
 * Returns the versions this call applied.
 */
export async function runMigrations(
  db: SqlDatabase,
  list: readonly Migration[] = migrations,
): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => Number(r.version)));
    const done: number[] = [];
    for (const m of [...list].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      done.push(m.version);
    }
    return done;
  });
}

/** The versions recorded in the ledger, ascending; empty before the first migration. Reads only. */
export async function appliedMigrations(db: SqlDatabase): Promise<number[]> {
  const { rows: table } = await db.query<{ t: string | null }>(
    "SELECT to_regclass('schema_migrations')::text AS t",
  );
  if (!table[0]?.t) return [];
  const { rows } = await db.query<{ version: number }>(
    'SELECT version FROM schema_migrations ORDER BY version',
  );
  return rows.map((r) => Number(r.version));
}
