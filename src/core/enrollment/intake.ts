import type { Clock, Ledger, NewEnrollment } from '../ports';
import {
  type FormFields,
  ineligibilityOf,
  isValidUserReference,
  parseIdVerificationCallback,
  type RejectionReason,
  type UserReferenceField,
} from './callback';

export interface IntakeOptions {
  userReferenceField: UserReferenceField;
  /** `intent`: only scan references an internal service registered first are stored. */
  binding: 'none' | 'intent';
}

export interface IntakeDeps {
  ledger: Ledger;
  clock: Clock;
}

export interface IntakeResult {
  enrollmentReference: string;
  /** False when the scan reference was already known (a repeated delivery). */
  created: boolean;
  state: 'PENDING' | 'REJECTED';
  reason: RejectionReason | null;
}

/**
 * Invariants 1, 2 and 5: the allowlisted fields of a NETVERIFYID callback are committed,
 * once per scan reference, with their audit entries, before the HTTP layer answers 200.
 * Rejections that the callback alone decides are recorded here; nothing is fetched.
 */
export async function receiveIdVerificationCallback(
  deps: IntakeDeps,
  options: IntakeOptions,
  fields: FormFields,
  sourceAddress: string | undefined,
): Promise<IntakeResult> {
  const callback = parseIdVerificationCallback(fields, options.userReferenceField);
  const now = deps.clock.now();
  const ref = callback.enrollmentReference;

  return deps.ledger.transaction(async (tx) => {
    // The candidate is kept only once it is known not to be PII.
    const userReference = isValidUserReference(callback.userReferenceCandidate)
      ? callback.userReferenceCandidate
      : null;
    let reason: RejectionReason | null = null;
    if (userReference === null) {
      reason = 'invalid_user_reference';
    } else if (options.binding === 'intent') {
      const intent = await tx.intents.get(ref);
      if (!intent) reason = 'unexpected_enrollment';
      else if (intent.userReference !== userReference) reason = 'user_reference_mismatch';
    }
    reason ??= ineligibilityOf(callback);

    const iv =
      typeof callback.identityVerification === 'object' ? callback.identityVerification : null;
    const enrollment: NewEnrollment = {
      enrollmentReference: ref,
      userReference,
      state: reason ? 'REJECTED' : 'PENDING',
      reason,
      verificationStatus: callback.verificationStatus,
      similarity: iv?.similarity ?? null,
      validity: iv?.validity ?? null,
      verificationReason: iv?.reason ?? null,
      callbackFacemapUrl: callback.facemapUrl,
      scanSource: callback.scanSource,
      sourceAddress: sourceAddress ?? null,
      transactionDate: callback.transactionDate,
      callbackDate: callback.callbackDate,
      nextAttemptAt: reason ? null : now,
    };
    const created = await tx.enrollments.insert(enrollment, now);
    if (!created) {
      const existing = await tx.enrollments.get(ref);
      return {
        enrollmentReference: ref,
        created: false,
        state: existing?.state === 'REJECTED' ? 'REJECTED' : 'PENDING',
        reason: (existing?.reason as RejectionReason | null) ?? null,
      };
    }
    const subject = { enrollmentReference: ref, userReference };
    await tx.audit.append({
      type: 'enrollment.received',
      actor: 'jumio',
      ...subject,
      details: {
        verificationStatus: callback.verificationStatus,
        scanSource: callback.scanSource,
        sourceAddress: sourceAddress ?? null,
      },
    });
    if (reason) {
      await tx.audit.append({
        type: 'enrollment.rejected',
        actor: 'system',
        ...subject,
        details: { reason, stage: 'callback' },
      });
    }
    return {
      enrollmentReference: ref,
      created: true,
      state: enrollment.state as 'PENDING' | 'REJECTED',
      reason,
    };
  });
}
