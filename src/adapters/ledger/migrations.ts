import { VaultError } from '../../core/errors';
import type { SqlDatabase } from './sql';

/**
 * Versioned migrations. Append only: a migration that has landed is never edited, the
 * next change is a new version. Both PostgreSQL and PGlite run the same SQL.
 *
 * On PostgreSQL a migration role owns the tables and the vault runs as a runtime role
 * that only reads and writes rows (docs/postgres-roles.sql grants it, by default
 * privileges, SELECT, INSERT, UPDATE, DELETE on every new table). A table the runtime role
 * must not rewrite revokes those privileges in its own migration, as version 4 does.
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
    version: 4,
    name: 'audit_events: refuse TRUNCATE; only the owner may rewrite the trail and the versions',
    sql: `
      -- The row-level trigger does not fire on TRUNCATE, which would empty the trail.
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

      -- Default privileges give the runtime role every row privilege on new tables: take
      -- back from every role but the owner what it must not do to the trail and versions.
      DO $$
      DECLARE
        r record;
      BEGIN
        FOR r IN
          SELECT DISTINCT c.relname, acl.grantee
            FROM pg_class c, aclexplode(c.relacl) acl
           WHERE c.oid IN ('audit_events'::regclass, 'schema_migrations'::regclass)
             AND acl.grantee <> c.relowner
        LOOP
          EXECUTE format(
            'REVOKE %s ON %I FROM %s',
            CASE WHEN r.relname = 'audit_events' THEN 'UPDATE, DELETE, TRUNCATE'
                 ELSE 'INSERT, UPDATE, DELETE, TRUNCATE' END,
            r.relname,
            CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
        END LOOP;
      END $$;
    `,
  },
  {
    version: 5,
    name: 'authentication: results, reconciliation, deletion at Jumio, idempotency, notifications',
    sql: `
      -- A PASSED authentication is the person's last interaction (the retention clock).
      ALTER TABLE enrollments ADD COLUMN last_interaction_at timestamptz;

      ALTER TABLE authentications RENAME COLUMN completed_at TO finalized_at;
      ALTER TABLE authentications
        ADD COLUMN reason           text,
        -- Who settled the final state: callback, reconciled (Retrieval API) or superseded.
        ADD COLUMN source           text,
        ADD COLUMN expires_at       timestamptz,
        ADD COLUMN notify_url       text,
        ADD COLUMN jumio_deleted_at timestamptz,
        ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
        ADD COLUMN next_attempt_at  timestamptz,
        ADD COLUMN last_error       text,
        ADD COLUMN lease_owner      text,
        ADD COLUMN lease_until      timestamptz;
      UPDATE authentications SET expires_at = created_at + interval '15 minutes';
      ALTER TABLE authentications ALTER COLUMN expires_at SET NOT NULL;
      -- The authentications queue: INITIATED rows to reconcile, final rows to delete at Jumio.
      CREATE INDEX authentications_due ON authentications (next_attempt_at)
        WHERE next_attempt_at IS NOT NULL;
      -- The rate limit counts a user's recent initiates; the read API pages newest first.
      CREATE INDEX authentications_by_user
        ON authentications (user_reference, created_at DESC, authentication_reference DESC);
      CREATE INDEX authentications_by_time
        ON authentications (created_at DESC, authentication_reference DESC);

      -- One initiate in flight per enrollment: the Jumio call runs outside any transaction.
      CREATE TABLE authentication_initiations (
        enrollment_reference text PRIMARY KEY,
        owner                text NOT NULL,
        claimed_until        timestamptz NOT NULL
      );

      -- Idempotency-Key of POST /v1/authentications, per API key, for 24 hours.
      CREATE TABLE idempotency_keys (
        api_key_name    text NOT NULL,
        idempotency_key text NOT NULL,
        request_sha256  text NOT NULL,
        -- Null while the first request is in flight.
        response        jsonb,
        created_at      timestamptz NOT NULL,
        expires_at      timestamptz NOT NULL,
        PRIMARY KEY (api_key_name, idempotency_key)
      );
      CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

      -- The outbox of signed notifications to calling services (Standard Webhooks).
      CREATE TABLE notifications (
        id                       text PRIMARY KEY,
        type                     text NOT NULL,
        authentication_reference text,
        url                      text NOT NULL,
        -- The exact JSON body, signed and sent identically on every attempt.
        payload                  text NOT NULL,
        state                    text NOT NULL CHECK (state IN ('PENDING','DELIVERED','FAILED')),
        deliver_until            timestamptz NOT NULL,
        attempts                 integer NOT NULL DEFAULT 0,
        next_attempt_at          timestamptz,
        last_error               text,
        last_status              integer,
        lease_owner              text,
        lease_until              timestamptz,
        delivered_at             timestamptz,
        created_at               timestamptz NOT NULL DEFAULT now(),
        updated_at               timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'PENDING';
      CREATE INDEX notifications_by_state ON notifications (state, created_at, id);
    `,
  },
  {
    version: 6,
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

      -- Every new entry is chained: an INSERT that bypasses the chain head is refused (the
      -- entries from before the chain are sealed once, by the migration step).
      CREATE FUNCTION audit_events_chained() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL THEN
          RAISE EXCEPTION 'audit_events entries must be chained (seq, prev_hash, hash)'
            USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER audit_events_chained BEFORE INSERT ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_chained();

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
  {
    version: 7,
    name: 'key rotation: the key wrapping each vault key; facemaps by wrapping key',
    sql: `
      -- Which key wraps each vault key (NULL: written before it was recorded; vault rewrap
      -- rewraps those too), and when it was last rewrapped.
      ALTER TABLE vault_keys
        ADD COLUMN key_id     text,
        ADD COLUMN updated_at timestamptz;
      -- Facemaps by wrapping key: the per-key counts (inventory summary, GET /v1/keys)
      -- and the claims of vault rewrap.
      CREATE INDEX enrollments_holding_by_key ON enrollments (key_id, enrollment_reference)
        WHERE state IN ('STORED','ACTIVE','PARKED');
    `,
  },
];

/** Arbitrary but fixed: every replica contends for the same advisory lock. */
const MIGRATION_LOCK_KEY = 7_340_021_911;

/**
 * Migrations are pending, and the connected role may not apply them (the runtime role):
 * the message tells the operator what to run.
 */
export class MigrationsPendingError extends VaultError {
  constructor(
    readonly pending: number[],
    role: string,
    options?: { cause?: unknown },
  ) {
    super(
      'ledger_migrations_pending',
      `the ledger needs migration(s) ${pending.join(', ')}, which the database role ` +
        `${JSON.stringify(role)} may not apply: run \`npm run migrate\` with DATABASE_MIGRATION_URL ` +
        'set to the migration role (the one that owns the tables; see docs/postgres-roles.sql), ' +
        'or set DATABASE_MIGRATION_URL for the vault, then start it again',
      options,
    );
  }
}

/** Versions of `list` not applied yet; reads only, so a role without CREATE can ask. */
export async function pendingMigrations(
  db: SqlDatabase,
  list: readonly Migration[] = migrations,
): Promise<number[]> {
  const { rows } = await db.query<{ table: string | null }>(
    "SELECT to_regclass('schema_migrations')::text AS table",
  );
  const applied = new Set<number>();
  if (rows[0]?.table) {
    const done = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
    for (const r of done.rows) applied.add(Number(r.version));
  }
  return list
    .map((m) => m.version)
    .filter((v) => !applied.has(v))
    .sort((a, b) => a - b);
}

/** insufficient_privilege (42501): permission denied, must be owner. */
function isPrivilegeError(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '42501';
}

/**
 * Applies the pending migrations in order, in one transaction under a transaction-scoped
 * advisory lock, so replicas that start together apply each version exactly once.
 * Returns the versions this call applied. When nothing is pending it only reads, so the
 * runtime role (which may not create tables) starts on a current ledger; when something
 * is pending and the role may not apply it, throws MigrationsPendingError.
 */
export async function runMigrations(
  db: SqlDatabase,
  list: readonly Migration[] = migrations,
): Promise<number[]> {
  const pending = await pendingMigrations(db, list);
  if (pending.length === 0) return [];
  try {
    return await applyMigrations(db, list);
  } catch (error) {
    if (!isPrivilegeError(error)) throw error;
    const { rows } = await db.query<{ role: string }>('SELECT current_user AS role');
    throw new MigrationsPendingError(pending, rows[0]?.role ?? 'unknown', { cause: error });
  }
}

function applyMigrations(db: SqlDatabase, list: readonly Migration[]): Promise<number[]> {
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
