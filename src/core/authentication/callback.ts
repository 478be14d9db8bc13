import { authenticationResultSchema } from '../jumio';
import type { Clock, FinalAuthenticationState, Ledger } from '../ports';
import {
  CallbackFormatError,
  type FormFields,
  JUMIO_REFERENCE,
  single,
  timestampField,
} from '../enrollment/callback';
import { applyReportedResult, type FinalizePolicy, type ReportOutcome } from './record';

const FINAL = new Set(['PASSED', 'FAILED', 'INVALID', 'EXPIRED']);

/**
 * NETVERIFY_AUTHENTICATION callbacks share the one callback URL. Their allowlisted fields
 * are recorded durably (once per reference and result), then applied in the same commit:
 * INITIATED -> the reported final state. Images and the user reference they may carry are
 * dropped unread. A callback for a reference the vault does not know (an initiate whose
 * answer was lost, or a forgery) is kept as an orphan, audited, and answered 200: the
 * initiate that recorded it later applies it.
 */
export async function receiveAuthenticationCallback(
  deps: { ledger: Ledger; clock: Clock; policy: FinalizePolicy },
  fields: FormFields,
  sourceAddress: string | undefined,
): Promise<{ created: boolean; outcome: ReportOutcome | 'orphan' }> {
  const reference = single(fields, 'transactionReference');
  if (!reference || !JUMIO_REFERENCE.test(reference)) {
    throw new CallbackFormatError(
      'transactionReference is missing or malformed',
      'malformed_transaction_reference',
    );
  }
  const result = authenticationResultSchema.safeParse(single(fields, 'transactionResult'));
  if (!result.success || !FINAL.has(result.data)) {
    throw new CallbackFormatError(
      'transactionResult is missing or not a final result',
      'invalid_transaction_result',
    );
  }
  const rawEnrollment = single(fields, 'enrollmentTransactionReference');
  const enrollment = rawEnrollment && JUMIO_REFERENCE.test(rawEnrollment) ? rawEnrollment : null;
  const scanSource = single(fields, 'scanSource')?.toUpperCase();
  return deps.ledger.transaction(async (tx) => {
    const created = await tx.authenticationCallbacks.record({
      authenticationReference: reference,
      transactionResult: result.data,
      enrollmentReference: enrollment,
      transactionDate: timestampField(fields, 'transactionDate'),
      callbackDate: timestampField(fields, 'callbackDate'),
      scanSource: scanSource && /^[A-Z_]{1,16}$/.test(scanSource) ? scanSource : null,
      sourceAddress: sourceAddress ?? null,
    });
    // Row locks before the chain head (which audit entries take until commit; recorded
    // ones only at commit): a row locked after it deadlocks with an initiate that holds the
    // enrollment and waits for the head. The enrollment's lock orders this with an initiate
    // recording the same reference, so the callback is either applied here or found by it.
    if (enrollment) await tx.enrollments.get(enrollment, { forUpdate: true });
    const authentication = await tx.authentications.get(reference, { forUpdate: true });
    if (authentication && authentication.enrollmentReference !== enrollment) {
      // A PASSED result moves the retention clock of the authentication's own enrollment.
      await tx.enrollments.get(authentication.enrollmentReference, { forUpdate: true });
    }
    if (created) {
      tx.audit.record({
        type: 'authentication.callback_received',
        actor: 'jumio',
        authenticationReference: reference,
        enrollmentReference: enrollment,
        details: { transactionResult: result.data, sourceAddress: sourceAddress ?? null },
      });
    }
    if (!authentication) {
      if (created) {
        tx.audit.record({
          type: 'authentication.callback_orphaned',
          actor: 'jumio',
          authenticationReference: reference,
          enrollmentReference: enrollment,
          details: { transactionResult: result.data },
        });
      }
      return { created, outcome: 'orphan' as const };
    }
    const outcome = await applyReportedResult(
      tx,
      authentication,
      {
        result: result.data as FinalAuthenticationState,
        enrollmentReference: enrollment,
        source: 'callback',
      },
      created,
      deps.clock.now(),
      deps.policy,
    );
    return { created, outcome };
  });
}

/** Unknown callback types are answered 200 (so Jumio stops retrying) and audited. */
export async function recordIgnoredCallback(
  deps: { ledger: Ledger },
  callBackType: string,
  sourceAddress: string | undefined,
): Promise<void> {
  const type = /^[A-Za-z0-9_]{1,64}$/.test(callBackType) ? callBackType : 'unreadable';
  await deps.ledger.transaction((tx) =>
    tx.audit.append({
      type: 'callback.ignored',
      actor: 'jumio',
      details: { callBackType: type, sourceAddress: sourceAddress ?? null },
    }),
  );
}
