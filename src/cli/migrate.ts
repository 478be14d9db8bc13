import { runMigrations } from '../adapters/ledger/migrations';
import { ConfigError, loadConfig } from '../config';
import { openDatabase } from '../container';

/** `npm run migrate`: applies pending ledger migrations (the vault also does at start-up). */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  // As the migration role (DATABASE_MIGRATION_URL) when one is configured.
  const db = await openDatabase(config, 'migration');
  try {
    const applied = await runMigrations(db);
    console.log(
      applied.length > 0
        ? `applied migrations ${applied.join(', ')} to the ${db.kind} ledger`
        : `the ${db.kind} ledger is up to date`,
    );
  } finally {
    await db.close();
  }
}

main().catch((error: unknown) => {
  console.error(
    `migrate failed: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
