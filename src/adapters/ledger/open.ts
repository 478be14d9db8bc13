/**
 * Opening the ledger alone: its database (PostgreSQL or the embedded PGlite, from the
 * configuration), with or without pending migrations. Kept apart from the composition root
 * (src/container.ts) so that the CLI commands that need only the ledger (`vault inventory`,
 * `migrate`, `replay`) do not load the AWS SDKs, the HTTP stack, the metrics and the
 * simulator that building the whole vault needs.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { LedgerConfig } from '../../config';
import { runMigrations } from './migrations';
import { PgDatabase } from './pg-database';
import { LEDGER_TEMPLATE, PgliteDatabase } from './pglite-database';
import type { SqlDatabase } from './sql';
import { SqlLedger } from './sql-ledger';

/**
 * The ledger's database. `migration`: a one-connection pool as the migration role
 * (DATABASE_MIGRATION_URL, else DATABASE_URL) with the longer migration bound. Every wait
 * is bounded: connecting (and waiting for a pool slot), each statement on the server, each
 * answer on the client (a server that stops answering), a transaction left idle.
 */
export async function openDatabase(
  config: Pick<LedgerConfig, 'database'>,
  purpose: 'runtime' | 'migration' = 'runtime',
): Promise<SqlDatabase> {
  if (config.database.kind === 'postgres') {
    const { url, migrationUrl, poolMax, timeouts } = config.database;
    const migration = purpose === 'migration';
    const statementMs = migration ? timeouts.migrationMs : timeouts.statementMs;
    return new PgDatabase({
      connectionString: migration ? (migrationUrl ?? url) : url,
      max: migration ? 1 : poolMax,
      application_name: migration ? 'facemap-vault-migrate' : 'facemap-vault',
      connectionTimeoutMillis: timeouts.connectMs,
      statement_timeout: statementMs,
      // Past the server's own bound: normally the server cancels first and says why.
      query_timeout: migration ? timeouts.migrationMs + timeouts.queryMs : timeouts.queryMs,
      idle_in_transaction_session_timeout: timeouts.idleInTransactionMs,
      // Notices a peer that vanished without closing the connection.
      keepAlive: true,
    });
  }
  await mkdir(config.database.dataDir, { recursive: true, mode: 0o700 });
  // A new data directory starts from the build's migrated template when there is one.
  return PgliteDatabase.open(config.database.dataDir, {
    template: existsSync(LEDGER_TEMPLATE) ? LEDGER_TEMPLATE : undefined,
  });
}

/**
 * The ledger alone, for commands that need nothing else (the CLI). Applies pending
 * migrations (as the migration role) unless `migrate: false`; the caller closes `db`.
 */
export async function openLedger(
  config: Pick<LedgerConfig, 'database'>,
  options: { migrate?: boolean } = {},
): Promise<{ db: SqlDatabase; ledger: SqlLedger; applied: number[] }> {
  const db = await openDatabase(config, options.migrate !== false ? 'migration' : 'runtime');
  try {
    const applied = options.migrate !== false ? await migrate(db) : [];
    return { db, ledger: new SqlLedger(db), applied };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

/** Runs `fn` on the ledger alone (no migration) and closes it afterwards. */
export async function withLedger<T>(
  config: Pick<LedgerConfig, 'database'>,
  fn: (ledger: SqlLedger) => Promise<T>,
): Promise<T> {
  const { db, ledger } = await openLedger(config, { migrate: false });
  try {
    return await fn(ledger);
  } finally {
    await db.close();
  }
}

/**
 * Pending migrations, then the audit entries written before the chain existed chained
 * once (the trigger lets only that update through, and only the migration role may).
 */
export async function migrate(db: SqlDatabase): Promise<number[]> {
  const applied = await runMigrations(db);
  await new SqlLedger(db).transaction((tx) => tx.audit.sealUnchained());
  return applied;
}
