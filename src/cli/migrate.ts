import { migrations } from '../adapters/ledger/migrations';
import { loadLedgerConfig } from '../config';
import { openLedger } from '../adapters/ledger/open';
import type { Io } from './io';

/**
 * `vault migrate`: applies pending ledger migrations (the vault also does at start-up).
 * Reads only the ledger's settings, so it runs before the rest is configured.
 */
export async function migrate(options: { json: boolean }, io: Io): Promise<number> {
  const config = loadLedgerConfig(io.env);
  const { db, applied } = await openLedger(config);
  try {
    const latest = Math.max(...migrations.map((m) => m.version));
    if (options.json) {
      io.out(JSON.stringify({ ledger: db.kind, applied, version: latest }));
    } else {
      io.out(
        applied.length > 0
          ? `applied migrations ${applied.join(', ')} to the ${db.kind} ledger (now at version ${latest})`
          : `the ${db.kind} ledger is up to date (version ${latest})`,
      );
    }
    return 0;
  } finally {
    await db.close();
  }
}
