/**
 * A second process for the data-directory lock tests: opens the embedded ledger at
 * argv[2] as the vault does. `once` closes it and exits 0; `hold` prints `opened` and
 * keeps it open until killed. A refusal goes to stderr with exit code 1.
 */
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';

async function main(): Promise<void> {
  const [dataDir, mode] = process.argv.slice(2);
  if (!dataDir || (mode !== 'once' && mode !== 'hold')) throw new Error('usage: <dir> once|hold');
  const db = await PgliteDatabase.open(dataDir);
  await db.exec('CREATE TABLE IF NOT EXISTS opened_by (pid integer)');
  await db.query('INSERT INTO opened_by VALUES ($1)', [process.pid]);
  if (mode === 'once') {
    await db.close();
    return;
  }
  process.stdout.write('opened\n');
  setInterval(() => undefined, 60_000);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
