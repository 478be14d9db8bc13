/**
 * `npm run build`: the embedded ledger's template, a migrated PGlite data directory in
 * dist/ledger-template. A vault whose data directory is new starts from a copy of it
 * instead of running initdb, which in WebAssembly takes seconds and most of a gigabyte of
 * memory. (A dumpDataDir tar loaded with loadDataDir was measured too: it holds the tar
 * several times in memory, about 200 MB more at first start than a copy.) Migrations still
 * run at start-up: those added after the build apply.
 */
import { rmSync } from 'node:fs';
import { runMigrations } from './migrations';
import { LEDGER_TEMPLATE, PgliteDatabase } from './pglite-database';

export async function writeLedgerTemplate(dir = LEDGER_TEMPLATE): Promise<number[]> {
  rmSync(dir, { recursive: true, force: true });
  const db = await PgliteDatabase.open(dir);
  try {
    return await runMigrations(db);
  } finally {
    await db.close();
  }
}

if (require.main === module) {
  writeLedgerTemplate(process.argv[2]).then(
    (applied) =>
      process.stdout.write(`ledger template written (migrations ${applied.join(', ')})\n`),
    (error: unknown) => {
      process.stderr.write(
        `ledger template: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
