import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { PgDatabase } from '../../src/adapters/ledger/pg-database';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';

/** A database the test owns: `open` may be called several times (several "replicas"). */
export interface TestDatabase {
  name: string;
  open(): Promise<SqlDatabase>;
  dispose(): Promise<void>;
}

/** A new, empty PostgreSQL database next to `adminUrl`'s; `drop` removes it. */
export async function createPostgresDatabase(
  adminUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const dbName = `vault_t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await client.end();
    },
  };
}

async function freshPostgres(adminUrl: string): Promise<TestDatabase> {
  const created = await createPostgresDatabase(adminUrl);
  const opened: SqlDatabase[] = [];
  return {
    name: 'postgres',
    async open() {
      const db = new PgDatabase({ connectionString: created.url, max: 5 });
      opened.push(db);
      return db;
    },
    async dispose() {
      await Promise.all(opened.map((db) => db.close().catch(() => undefined)));
      await created.drop();
    },
  };
}

async function freshPglite(): Promise<TestDatabase> {
  // One in-memory instance per test file: a fresh PGlite costs seconds (initdb).
  const db = await PgliteDatabase.open();
  return {
    name: 'pglite',
    open: async () => db,
    dispose: () => db.close(),
  };
}

type Kind = [string, () => Promise<TestDatabase>];

/**
 * PGlite always; PostgreSQL too when TEST_DATABASE_URL is set. TEST_LEDGERS=postgres
 * (npm run test:pg) runs the PostgreSQL side alone, since npm test already ran PGlite.
 */
export const testDatabaseKinds: Kind[] = [
  ...(process.env.TEST_LEDGERS === 'postgres' ? [] : [['pglite', freshPglite] as Kind]),
  ...(process.env.TEST_DATABASE_URL
    ? [['postgres', () => freshPostgres(process.env.TEST_DATABASE_URL!)] as Kind]
    : []),
];

/**
 * Makes the ledger refuse to write audit entries of `type` (a trigger that raises), as an
 * audit store that fails would; resolves to the function that puts it back.
 */
export async function refuseAuditEntries(
  db: SqlDatabase,
  type: string,
): Promise<() => Promise<void>> {
  const name = `refuse_audit_${randomBytes(4).toString('hex')}`;
  await db.exec(`
    CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.type = '${type.replace(/'/g, "''")}' THEN RAISE EXCEPTION 'audit store refuses'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER ${name} BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION ${name}();`);
  return () => db.exec(`DROP TRIGGER ${name} ON audit_events; DROP FUNCTION ${name}();`);
}
