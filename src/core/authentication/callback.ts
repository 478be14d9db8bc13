import { authenticationResultSchema } from '../jumio';
import type { Clock, Ledger } from '../ports';
import {
  CallbackFormatError,
  type FormFields,
  JUMIO_REFERENCE,
  single,
  timestampField,
} from '../enrollment/callback';

const FINAL = new Set(['PASSED', 'FAILED', 'INVALID', 'EXPIRED']);

/**
 * NETVERIFY_AUTHENTICATION callbacks share the one callback URL. Their allowlisted fields
 * are recorded durably (once per reference and result) for the authentication work;
 * images and the user reference they may carry are dropped unread.
 */
export async function receiveAuthenticationCallback(
  deps: { ledger: Ledger; clock: Clock },
  fields: FormFields,
  sourceAddress: string | undefined,
): Promise<{ created: boolean }> {
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
    if (created) {
      await tx.audit.append({
        type: 'authentication.callback_received',
        actor: 'jumio',
        authenticationReference: reference,
        enrollmentReference: enrollment,
        details: { transactionResult: result.data, sourceAddress: sourceAddress ?? null },
      });
    }
    return { created };
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
