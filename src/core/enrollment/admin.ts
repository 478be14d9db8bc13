import { VaultError } from '../errors';
import type { Clock, EnrollmentIntent, EnrollmentRecord, Ledger } from '../ports';
import { isValidUserReference, JUMIO_REFERENCE, USER_REFERENCE_RULE } from './callback';
import { nextStep, supersede } from './pipeline';

/** What the read API shows of an enrollment: lifecycle metadata, never bytes. */
export interface EnrollmentView {
  userReference: string | null;
  enrollmentReference: string;
  state: EnrollmentRecord['state'];
  reason?: string;
  createdAt: string;
  storedAt?: string;
  activatedAt?: string;
  jumioDeletedAt?: string;
  facemapBytes: number | null;
  ciphertextSha256: string | null;
  keyId: string | null;
  attempts: number;
  lastError?: string;
}

export function toEnrollmentView(e: EnrollmentRecord): EnrollmentView {
  const iso = (d: Date | null) => d?.toISOString();
  return {
    userReference: e.userReference,
    enrollmentReference: e.enrollmentReference,
    state: e.state,
    ...(e.reason ? { reason: e.reason } : {}),
    createdAt: e.createdAt.toISOString(),
    ...(e.storedAt ? { storedAt: iso(e.storedAt) } : {}),
    ...(e.activatedAt ? { activatedAt: iso(e.activatedAt) } : {}),
    ...(e.jumioDeletedAt ? { jumioDeletedAt: iso(e.jumioDeletedAt) } : {}),
    facemapBytes: e.facemapBytes,
    ciphertextSha256: e.ciphertextSha256,
    keyId: e.keyId,
    attempts: e.attempts,
    ...(e.lastError ? { lastError: e.lastError } : {}),
  };
}

export class NotFoundError extends VaultError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class ConflictError extends VaultError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export class InvalidRequestError extends VaultError {
  constructor(message: string) {
    super('invalid_request', message);
  }
}

function assertUserReference(userReference: string): void {
  if (!isValidUserReference(userReference)) {
    throw new InvalidRequestError(`userReference ${USER_REFERENCE_RULE}`);
  }
}

/** The user's other enrollments, newest first: a re-enrollment in flight or FAILED shows here. */
export interface EnrollmentSummary {
  enrollmentReference: string;
  state: EnrollmentRecord['state'];
  reason?: string;
  createdAt: string;
  lastError?: string;
}

/** The user's current enrollment (the ACTIVE one, else the most recent), and the others. */
export async function currentEnrollment(
  ledger: Ledger,
  userReference: string,
): Promise<EnrollmentView & { history: EnrollmentSummary[] }> {
  assertUserReference(userReference);
  const all = await ledger.transaction((tx) => tx.enrollments.listByUser(userReference));
  const current = all.find((e) => e.state === 'ACTIVE') ?? all[0];
  if (!current) throw new NotFoundError('no enrollment for this user reference');
  const history = all
    .filter((e) => e !== current)
    .map((e) => ({
      enrollmentReference: e.enrollmentReference,
      state: e.state,
      ...(e.reason ? { reason: e.reason } : {}),
      createdAt: e.createdAt.toISOString(),
      ...(e.lastError ? { lastError: e.lastError } : {}),
    }));
  return { ...toEnrollmentView(current), history };
}

/**
 * One enrollment by its scan reference, whatever its state or user: a rejected onboarding
 * (invalid or missing user reference included) can be found by what Jumio shows.
 */
export async function enrollmentByScan(
  ledger: Ledger,
  scanReference: string,
): Promise<EnrollmentView> {
  if (!JUMIO_REFERENCE.test(scanReference)) {
    throw new InvalidRequestError(
      'scanReference must be a Jumio scan reference (1-36 letters, digits and -)',
    );
  }
  const enrollment = await ledger.transaction((tx) => tx.enrollments.get(scanReference));
  if (!enrollment) throw new NotFoundError('no enrollment for this scan reference');
  return toEnrollmentView(enrollment);
}

/**
 * Puts the user's FAILED enrollment back into the pipeline at the step it failed in
 * (derived from what it had completed), with a fresh attempt budget. Audited.
 */
export async function replayFailed(
  deps: { ledger: Ledger; clock: Clock },
  userReference: string,
  actor: string,
): Promise<EnrollmentView> {
  assertUserReference(userReference);
  const now = deps.clock.now();
  return deps.ledger.transaction(async (tx) => {
    const failed = (await tx.enrollments.listByUser(userReference)).find(
      (e) => e.state === 'FAILED',
    );
    if (!failed) throw new ConflictError('no FAILED enrollment to replay for this user reference');
    const patch = {
      state: failed.storedAt ? ('STORED' as const) : ('PENDING' as const),
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      leaseOwner: null,
      leaseUntil: null,
    };
    await tx.enrollments.update(failed.enrollmentReference, patch, now, null);
    const resumed: EnrollmentRecord = { ...failed, ...patch };
    await tx.audit.append({
      type: 'enrollment.replayed',
      actor,
      enrollmentReference: failed.enrollmentReference,
      userReference,
      details: { previousError: failed.lastError, resumesAt: nextStep(resumed) },
    });
    return toEnrollmentView(resumed);
  });
}

/** ENROLLMENT_BINDING=intent: an internal service announces whose scan is coming. */
export async function registerIntent(
  ledger: Ledger,
  input: { enrollmentReference: string; userReference: string },
  actor: string,
): Promise<{ intent: EnrollmentIntent; created: boolean }> {
  if (!JUMIO_REFERENCE.test(input.enrollmentReference)) {
    throw new InvalidRequestError('enrollmentReference must be a Jumio scan reference');
  }
  assertUserReference(input.userReference);
  return ledger.transaction(async (tx) => {
    const existing = await tx.intents.get(input.enrollmentReference);
    if (existing) {
      if (existing.userReference !== input.userReference) {
        throw new ConflictError('this enrollment reference is registered for another user');
      }
      return { intent: existing, created: false };
    }
    const intent = await tx.intents.register({ ...input, registeredBy: actor });
    await tx.audit.append({
      type: 'enrollment.intent_registered',
      actor,
      enrollmentReference: input.enrollmentReference,
      userReference: input.userReference,
    });
    return { intent, created: true };
  });
}

/**
 * An operator decides a PARKED enrollment (two scans of one person whose order could not be
 * established): `activate` makes it the user's ACTIVE facemap, superseding the current one;
 * `discard` supersedes it. The superseded blob is destroyed by the pipeline. Audited.
 */
export async function resolveParked(
  deps: { ledger: Ledger; clock: Clock },
  enrollmentReference: string,
  action: 'activate' | 'discard',
  actor: string,
): Promise<EnrollmentView> {
  if (!JUMIO_REFERENCE.test(enrollmentReference)) {
    throw new InvalidRequestError('scanReference must be a Jumio scan reference');
  }
  const now = deps.clock.now();
  return deps.ledger.transaction(async (tx) => {
    const parked = await tx.enrollments.get(enrollmentReference, { forUpdate: true });
    if (!parked) throw new NotFoundError('no enrollment for this scan reference');
    if (parked.state !== 'PARKED') {
      throw new ConflictError(`the enrollment is ${parked.state}, not PARKED`);
    }
    const subject = { enrollmentReference, userReference: parked.userReference };
    const current = await tx.enrollments.findActive(parked.userReference!, { forUpdate: true });
    await tx.audit.append({
      type: 'enrollment.resolved',
      actor,
      ...subject,
      details: { action, activeEnrollment: current?.enrollmentReference ?? null },
    });
    const [loser, winner] = action === 'activate' ? [current, parked] : [parked, current];
    if (loser) {
      await supersede(tx, loser, now);
      await tx.audit.append({
        type: 'enrollment.superseded',
        actor,
        enrollmentReference: loser.enrollmentReference,
        userReference: loser.userReference,
        details: { supersededBy: winner?.enrollmentReference ?? null },
      });
    }
    if (action === 'activate') {
      await tx.enrollments.update(
        enrollmentReference,
        { state: 'ACTIVE', reason: null, activatedAt: now },
        now,
        null,
      );
      await tx.audit.append({ type: 'enrollment.activated', actor, ...subject });
    }
    return toEnrollmentView((await tx.enrollments.get(enrollmentReference))!);
  });
}
