import type { Clock, Ledger, Logger } from '../ports';
import type { PeriodicTask, TaskSlice } from '../schedules';
import { errorSummary } from '../work';
import { type ErasureService, LegalHoldError } from './erasure';

/** Users whose erasure one slice requests at most. */
const USERS_PER_SLICE = 100;

export interface RetentionDeps {
  ledger: Ledger;
  erasures: ErasureService;
  clock: Clock;
  logger: Logger;
  retentionDays: number;
}

/** What is past its retention deadline now (users on legal hold excluded). */
export function retentionDue(deps: Omit<RetentionDeps, 'erasures' | 'logger'>, limit: number) {
  const now = deps.clock.now();
  return deps.ledger.transaction((tx) => tx.inventory.retentionDue(now, deps.retentionDays, limit));
}

/**
 * Invariant 10: retention enforced, not hoped for. Each pass requests the erasure (reason
 * `retention`) of every enrollment past its deadline (BIPA: the earlier of "purpose
 * satisfied" and the last interaction plus RETENTION_DAYS), through the same path as an
 * erasure on request; the `erasures` queue destroys the blobs and issues the receipts.
 * Users on legal hold are skipped until it is released.
 */
export class RetentionPurge implements PeriodicTask {
  readonly name = 'retention-purge';

  constructor(
    private readonly deps: RetentionDeps,
    readonly intervalMs: number,
  ) {}

  async runSlice(): Promise<TaskSlice> {
    const due = await retentionDue(this.deps, USERS_PER_SLICE);
    let requested = 0;
    for (const { userReference, enrollmentReferences } of due) {
      try {
        await this.deps.erasures.request({
          userReference,
          enrollmentReferences,
          reason: 'retention',
          actor: 'system',
        });
        requested += 1;
      } catch (error) {
        // A hold placed since the query: the next pass looks again.
        if (error instanceof LegalHoldError) continue;
        this.deps.logger.error({ err: errorSummary(error) }, 'retention purge: erasure failed');
        throw error;
      }
    }
    if (requested > 0) this.deps.logger.info({ requested }, 'retention purge requested erasures');
    return { progress: {}, done: due.length < USERS_PER_SLICE };
  }
}
