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
  {
    version: 3,
    name: 'supersede order, blob store identity, parked enrollments, periodic tasks',
    sql: `
      ALTER TABLE enrollments
        -- The Retrieval API's transaction.date: the authoritative order of a user's scans.
        ADD COLUMN jumio_transaction_date timestamptz,
        -- Which store holds blob_key (BlobStore.location), so it is read and destroyed there.
        ADD COLUMN blob_store text;
      ALTER TABLE enrollments DROP CONSTRAINT enrollments_state_check;
      ALTER TABLE enrollments ADD CONSTRAINT enrollments_state_check CHECK (state IN
        ('PENDING','STORED','ACTIVE','REJECTED','FAILED','SUPERSEDED','PARKED','ERASED'));
      -- Due work is found by next_attempt_at; make sure no due row lacks one.
      UPDATE enrollments SET next_attempt_at = updated_at
       WHERE next_attempt_at IS NULL
         AND (state IN ('PENDING','STORED')
              OR (state = 'SUPERSEDED' AND blob_key IS NOT NULL AND blob_destroyed_at IS NULL));

      -- Periodic tasks (orphan sweep, ...) as rows leased like any other background work.
      CREATE TABLE schedules (
        name              text PRIMARY KEY,
        attempts          integer NOT NULL DEFAULT 0,
        next_attempt_at   timestamptz,
        last_error        text,
        lease_owner       text,
        lease_until       timestamptz,
        progress          jsonb NOT NULL DEFAULT '{}'::jsonb,
        last_completed_at timestamptz,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 7,
    name: 'compliance: chained audit trail, digests, legal holds, erasures, retention',
    sql: `
      -- The audit chain (invariant 9): sequence, previous hash, own hash. The head row is
      -- locked by every append until commit (see SqlAuditRepository for why).
      CREATE TABLE audit_chain_head (
        id   integer PRIMARY KEY CHECK (id = 1),
        seq  bigint NOT NULL,
        hash text NOT NULL
      );
      INSERT INTO audit_chain_head VALUES (1, 0, '${'0'.repeat(64)}');
      ALTER TABLE audit_events
        ADD COLUMN seq       bigint,
        ADD COLUMN prev_hash text,
        ADD COLUMN hash      text;
      CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);
      CREATE INDEX audit_events_by_type_seq ON audit_events (type, seq);
      CREATE INDEX audit_events_by_enrollment_seq ON audit_events (enrollment_reference, seq);
      CREATE INDEX audit_events_by_user_seq ON audit_events (user_reference, seq);
      CREATE INDEX audit_events_by_at ON audit_events (at);
      -- Still append-only; the one exception: entries written before the chain existed are
      -- sealed once (seq, prev_hash, hash set from NULL, nothing else changed).
      CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' THEN
          IF OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
             AND (NEW.id, NEW.at, NEW.type, NEW.actor, NEW.enrollment_reference,
                  NEW.authentication_reference, NEW.user_reference, NEW.details)
                 IS NOT DISTINCT FROM
                 (OLD.id, OLD.at, OLD.type, OLD.actor, OLD.enrollment_reference,
                  OLD.authentication_reference, OLD.user_reference, OLD.details) THEN
            RETURN NEW;
          END IF;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
      END $$;

      -- The last signed digest, so that digests chain and one writer at a time extends them.
      CREATE TABLE audit_digest_state (
        id          integer PRIMARY KEY CHECK (id = 1),
        digests     bigint NOT NULL,
        to_sequence bigint NOT NULL,
        signature   text,
        blob_key    text,
        created_at  timestamptz
      );
      INSERT INTO audit_digest_state VALUES (1, 0, 0, NULL, NULL, NULL);

      -- Retention: the authentication work records the last interaction; until it lands the
      -- activation time stands in (IF NOT EXISTS: whichever migration comes first adds it).
      ALTER TABLE enrollments ADD COLUMN IF NOT EXISTS last_interaction_at timestamptz;
      ALTER TABLE enrollments
        ADD COLUMN purpose_satisfied_at timestamptz,
        ADD COLUMN erased_at            timestamptz,
        ADD COLUMN erasure_id           text,
        ADD COLUMN state_before_erasure text;
      -- The inventory's stable order (keyset pagination).
      CREATE INDEX enrollments_inventory ON enrollments (created_at, enrollment_reference);

      -- A legal hold pauses erasure and retention for a person.
      CREATE TABLE legal_holds (
        user_reference text PRIMARY KEY,
        reference      text NOT NULL,
        reason         text NOT NULL,
        placed_by      text NOT NULL,
        placed_at      timestamptz NOT NULL
      );

      -- Erasures (on request or by retention): a queue of background work, PENDING until
      -- every blob version is gone; the receipt is the DONE row.
      CREATE TABLE erasures (
        erasure_id            text PRIMARY KEY,
        user_reference        text NOT NULL,
        enrollment_references text[] NOT NULL,
        reason                text NOT NULL,
        ticket                text,
        requested_by          text NOT NULL,
        state                 text NOT NULL CHECK (state IN ('PENDING','DONE')),
        blobs                 jsonb NOT NULL DEFAULT '[]'::jsonb,
        blob_keys_destroyed   jsonb,
        requested_at          timestamptz NOT NULL,
        erased_at             timestamptz,
        audit_sequence        bigint,
        attempts              integer NOT NULL DEFAULT 0,
        next_attempt_at       timestamptz,
        last_error            text,
        lease_owner           text,
        lease_until           timestamptz,
        updated_at            timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX erasures_by_user ON erasures (user_reference, requested_at);
      CREATE INDEX erasures_due ON erasures (next_attempt_at) WHERE state = 'PENDING';
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
