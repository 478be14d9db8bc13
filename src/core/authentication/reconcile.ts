import { VaultError } from '../errors';
import {
  FINAL_AUTHENTICATION_RESULTS,
  type JumioApi,
  type JumioAuthentication,
  JumioNotFoundError,
} from '../jumio';
import type {
  AuthenticationRecord,
  Clock,
  FinalAuthenticationState,
  Ledger,
  LedgerTx,
  Logger,
} from '../ports';
import type { PeriodicTask, TaskSlice } from '../schedules';
import type { Backoff, Job, StepResult } from '../work';
import { applyReportedResult, finalize, type FinalizePolicy } from './record';

/** How long past expiresAt Jumio may keep answering "not final" before the vault gives up. */
export const RECONCILE_GIVE_UP_MS = 24 * 60 * 60_000;

export const AUTHENTICATION_BACKOFF: Backoff = {
  baseMs: 5_000,
  maxMs: 15 * 60_000,
  // Retried for as long as it takes: visible through attempts, last error and queue age.
  maxAttempts: Infinity,
};

export type AuthenticationStep = 'reconcile' | 'delete_at_jumio';

/** Jumio still reports the transaction as CREATED or STARTED. */
class NotFinalAtJumio extends VaultError {
  constructor(result: string) {
    super('jumio_not_final', `Jumio still reports ${result}`);
  }
}

const FINAL: ReadonlySet<string> = new Set(FINAL_AUTHENTICATION_RESULTS);

/**
 * The authentications queue, on the shared worker mechanism: an authentication still
 * INITIATED past `expiresAt` + the grace period (its callback never came) is settled with
 * the Retrieval API (`404` -> EXPIRED); a final one is deleted at Jumio, whose copy holds
 * the liveness images (`404` counts as done). Both are retried with backoff until done.
 */
export class AuthenticationJob implements Job<AuthenticationRecord> {
  readonly queue = 'authentications' as const;

  constructor(
    private readonly deps: { jumio: JumioApi; clock: Clock; logger: Logger },
    private readonly policy: FinalizePolicy & { reconcileGraceMs: number },
    readonly backoff: Backoff = AUTHENTICATION_BACKOFF,
  ) {}

  load(tx: LedgerTx, key: string): Promise<AuthenticationRecord | null> {
    return tx.authentications.get(key);
  }

  stepOf(a: AuthenticationRecord): AuthenticationStep | null {
    if (a.state === 'INITIATED') return 'reconcile';
    if (this.policy.deleteAtJumio && !a.jumioDeletedAt) return 'delete_at_jumio';
    return null;
  }

  attemptsOf(a: AuthenticationRecord): number {
    return a.attempts;
  }

  async perform(a: AuthenticationRecord, step: string): Promise<StepResult> {
    return step === 'reconcile' ? this.reconcile(a) : this.deleteAtJumio(a);
  }

  async exhaust(): Promise<null> {
    return null;
  }

  private async reconcile(a: AuthenticationRecord): Promise<StepResult> {
    const now = this.deps.clock.now();
    const due = new Date(a.expiresAt.getTime() + this.policy.reconcileGraceMs);
    if (now < due) return { nextAttemptAt: due };
    let jumio: JumioAuthentication | null;
    try {
      jumio = await this.deps.jumio.getAuthentication(a.authenticationReference);
    } catch (error) {
      if (!(error instanceof JumioNotFoundError)) throw error;
      jumio = null;
    }
    if (jumio && !FINAL.has(jumio.transactionResult)) {
      const giveUpAt = a.expiresAt.getTime() + RECONCILE_GIVE_UP_MS;
      if (now.getTime() < giveUpAt) throw new NotFinalAtJumio(jumio.transactionResult);
    }
    return {
      nextAttemptAt: null,
      apply: async (tx) => {
        const row = await tx.authentications.get(a.authenticationReference, { forUpdate: true });
        if (!row) return { nextAttemptAt: null };
        let settled = row;
        if (jumio === null || !FINAL.has(jumio.transactionResult)) {
          // Unknown at Jumio (never created, or deleted), or never final: it cannot complete.
          const reason = jumio === null ? 'not_found_at_jumio' : 'not_final_at_jumio';
          if (row.state === 'INITIATED') {
            settled = await finalize(
              tx,
              row,
              { state: 'EXPIRED', reason, source: 'reconciled' },
              now,
              this.policy,
            );
          }
        } else {
          await applyReportedResult(
            tx,
            row,
            {
              result: jumio.transactionResult as FinalAuthenticationState,
              enrollmentReference: jumio.enrollmentTransactionReference,
              source: 'reconciled',
            },
            true,
            now,
            this.policy,
          );
          settled = (await tx.authentications.get(a.authenticationReference))!;
        }
        // Still INITIATED here means Jumio named another enrollment (audited as a conflict):
        // asking again will not settle it.
        const next = settled.state !== 'INITIATED' && this.stepOf(settled);
        return { nextAttemptAt: next ? now : null };
      },
    };
  }

  private async deleteAtJumio(a: AuthenticationRecord): Promise<StepResult> {
    await this.deps.jumio.deleteAuthentication(a.authenticationReference);
    const now = this.deps.clock.now();
    return {
      nextAttemptAt: null,
      apply: async (tx) => {
        await tx.authentications.update(a.authenticationReference, { jumioDeletedAt: now }, now);
        tx.audit.record({
          type: 'authentication.deleted_at_jumio',
          actor: 'system',
          authenticationReference: a.authenticationReference,
          enrollmentReference: a.enrollmentReference,
          userReference: a.userReference,
        });
      },
    };
  }
}

/** Forgets Idempotency-Keys older than 24 hours, in bounded batches. */
export class IdempotencyKeyPurge implements PeriodicTask {
  readonly name = 'idempotency-key-purge';

  constructor(
    private readonly deps: { ledger: Ledger },
    readonly intervalMs = 60 * 60_000,
    private readonly batch = 1000,
  ) {}

  async runSlice(_progress: Record<string, unknown>, _attempts: number, now: Date) {
    const purged = await this.deps.ledger.transaction((tx) =>
      tx.idempotency.purgeExpired(now, this.batch),
    );
    return { progress: {}, done: purged < this.batch } satisfies TaskSlice;
  }
}
