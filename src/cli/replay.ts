import { loadLedgerConfig } from '../config';
import { openLedger } from '../adapters/ledger/open';
import { replayFailed } from '../core/enrollment/admin';
import { isValidUserReference } from '../core/enrollment/callback';
import { systemClock } from '../core/ports';
import { cliActor, type Io } from './io';

/**
 * `vault replay <userReference>`: puts the user's FAILED enrollment back into the pipeline
 * at the step it failed in, with a fresh attempt budget, on the configured ledger (the same
 * as `POST /v1/enrollments/{userReference}/replay`). Audited as `enrollment.replayed` by
 * `cli:<os user>`. A running vault's workers pick it up.
 */
export async function replay(
  userReference: string,
  options: { json: boolean },
  io: Io,
): Promise<number> {
  // Checked again by replayFailed; here first so a typo never opens the database. The
  // value is not echoed: a malformed reference may be PII.
  if (!isValidUserReference(userReference)) {
    throw new Error(
      'userReference must be 1-100 characters of letters, digits, . _ : - and not an email address or phone number',
    );
  }
  const { db, ledger } = await openLedger(loadLedgerConfig(io.env));
  try {
    const view = await replayFailed(
      { ledger, clock: systemClock },
      userReference,
      cliActor(io.env),
    );
    if (options.json) {
      io.out(JSON.stringify(view));
    } else {
      io.out(
        `replayed: enrollment ${view.enrollmentReference} is ${view.state} again ` +
          '(a running vault picks it up on its next worker round)',
      );
      io.out(JSON.stringify(view, null, 2));
    }
    return 0;
  } finally {
    await db.close();
  }
}
