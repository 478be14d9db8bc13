import { userInfo } from 'node:os';
import { runMigrations } from '../adapters/ledger/migrations';
import { SqlLedger } from '../adapters/ledger/sql-ledger';
import { ConfigError, loadConfig } from '../config';
import { openDatabase } from '../container';
import { replayFailed } from '../core/enrollment/admin';
import { isValidUserReference } from '../core/enrollment/callback';
import { systemClock } from '../core/ports';

/**
 * `npm run replay -- <userReference>`: puts the user's FAILED enrollment back into the
 * pipeline at the step it failed in, with a fresh attempt budget, on the configured
 * ledger (the same as `POST /v1/enrollments/{userReference}/replay`). Audited as
 * `enrollment.replayed` by `cli:<os user>`. A running vault's workers pick it up.
 */
const USAGE = 'usage: npm run replay -- <userReference>';

function osUser(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('-h') || args.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const [userReference] = args;
  if (userReference === undefined || args.length !== 1) {
    console.error(USAGE);
    process.exit(2);
  }
  // Checked again by replayFailed; here first so a typo never opens the database.
  if (!isValidUserReference(userReference)) {
    throw new Error(
      'userReference must be 1-100 characters of letters, digits, . _ : - and not an email address or phone number',
    );
  }
  const config = loadConfig(process.env);
  const db = await openDatabase(config);
  try {
    await runMigrations(db);
    const ledger = new SqlLedger(db);
    const view = await replayFailed(
      { ledger, clock: systemClock },
      userReference,
      `cli:${osUser()}`,
    );
    console.log(
      `replayed: enrollment ${view.enrollmentReference} is ${view.state} again ` +
        '(a running vault picks it up on its next worker round)',
    );
    console.log(JSON.stringify(view, null, 2));
  } finally {
    await db.close();
  }
}

main().catch((error: unknown) => {
  console.error(
    `replay failed: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
