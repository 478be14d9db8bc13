import type { NewEnrollment } from '../../src/core/ports';

/** An eligible enrollment as the intake would record it, for tests that seed the ledger. */
export function newEnrollment(
  enrollmentReference: string,
  at: Date,
  overrides: Partial<NewEnrollment> = {},
): NewEnrollment {
  return {
    enrollmentReference,
    userReference: `u-${enrollmentReference}`,
    state: 'PENDING',
    reason: null,
    verificationStatus: 'APPROVED_VERIFIED',
    similarity: 'MATCH',
    validity: true,
    verificationReason: null,
    callbackFacemapUrl: null,
    scanSource: 'WEB',
    sourceAddress: '127.0.0.1',
    transactionDate: at,
    callbackDate: at,
    nextAttemptAt: at,
    ...overrides,
  };
}
