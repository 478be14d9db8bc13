import { enqueueNotification } from '../notifications/outbox';
import type {
  AuthenticationRecord,
  AuthenticationSource,
  FinalAuthenticationState,
  LedgerTx,
} from '../ports';
import { toAuthenticationView } from './view';

/** What every final state change needs to know beyond the row itself. */
export interface FinalizePolicy {
  /** Delete the transaction at Jumio once final (JUMIO_DELETE_AUTHENTICATIONS). */
  deleteAtJumio: boolean;
  /** Where to notify when the initiate named no notifyUrl (VAULT_NOTIFY_DEFAULT_URL). */
  notifyDefaultUrl: string | undefined;
}

export const NOTIFICATION_TYPE = 'authentication.finalized';

/**
 * INITIATED -> a final state, in the caller's transaction, with everything that goes with
 * it: the audit entry, the retention clock (PASSED), the notification in the outbox, and
 * the row made due for its deletion at Jumio. Callers hold the row lock and have checked
 * that it is INITIATED (invariant 8: final states never change).
 */
export async function finalize(
  tx: LedgerTx,
  a: AuthenticationRecord,
  outcome: {
    state: FinalAuthenticationState;
    reason: string | null;
    source: AuthenticationSource;
    details?: Record<string, unknown>;
  },
  now: Date,
  policy: FinalizePolicy,
): Promise<AuthenticationRecord> {
  const patch = {
    state: outcome.state,
    reason: outcome.reason,
    source: outcome.source,
    finalizedAt: now,
    nextAttemptAt: policy.deleteAtJumio ? now : null,
    attempts: 0,
    lastError: null,
  };
  await tx.authentications.update(a.authenticationReference, patch, now);
  const done: AuthenticationRecord = { ...a, ...patch, updatedAt: now };
  if (outcome.state === 'PASSED') {
    // The retention clock (invariant 10) runs from the person's last interaction. Row locks
    // come before the chain head (AuditRepository); the entry below takes it at commit.
    const enrollment = await tx.enrollments.get(a.enrollmentReference, { forUpdate: true });
    if (enrollment && !(enrollment.lastInteractionAt && enrollment.lastInteractionAt >= now)) {
      await tx.enrollments.update(a.enrollmentReference, { lastInteractionAt: now }, now, null);
    }
  }
  const subject = {
    authenticationReference: a.authenticationReference,
    enrollmentReference: a.enrollmentReference,
    userReference: a.userReference,
  };
  tx.audit.record({
    type: 'authentication.finalized',
    actor: outcome.source === 'callback' ? 'jumio' : 'system',
    ...subject,
    details: {
      state: outcome.state,
      reason: outcome.reason,
      source: outcome.source,
      ...outcome.details,
    },
  });
  const url = a.notifyUrl ?? policy.notifyDefaultUrl;
  if (url) {
    await enqueueNotification(
      tx,
      {
        type: NOTIFICATION_TYPE,
        url,
        authenticationReference: a.authenticationReference,
        data: toAuthenticationView(done),
      },
      now,
    );
  }
  return done;
}

export type ReportOutcome = 'applied' | 'unchanged' | 'conflict';

/**
 * A result Jumio reported (callback or Retrieval API) for a locked row. Only INITIATED
 * moves; a different later result, or one naming another enrollment, is audited as a
 * conflict (once: `isNew` is false for a repeated delivery) and changes nothing.
 */
export async function applyReportedResult(
  tx: LedgerTx,
  a: AuthenticationRecord,
  report: {
    result: FinalAuthenticationState;
    enrollmentReference: string | null;
    source: 'callback' | 'reconciled';
  },
  isNew: boolean,
  now: Date,
  policy: FinalizePolicy,
): Promise<ReportOutcome> {
  const conflict = async (kind: string, details: Record<string, unknown>) => {
    if (!isNew) return 'unchanged' as const;
    tx.audit.record({
      type: 'authentication.conflict',
      actor: report.source === 'callback' ? 'jumio' : 'system',
      authenticationReference: a.authenticationReference,
      enrollmentReference: a.enrollmentReference,
      userReference: a.userReference,
      details: {
        kind,
        source: report.source,
        recorded: a.state,
        reported: report.result,
        ...details,
      },
    });
    return 'conflict' as const;
  };
  if (report.enrollmentReference !== a.enrollmentReference) {
    return conflict('enrollment_mismatch', {
      reportedEnrollment: report.enrollmentReference,
    });
  }
  if (a.state === 'INITIATED') {
    await finalize(
      tx,
      a,
      { state: report.result, reason: null, source: report.source },
      now,
      policy,
    );
    return 'applied';
  }
  if (a.state !== report.result) return conflict('result', {});
  return 'unchanged';
}
