import { GroupCommit, type GroupCommitOptions } from '../group-commit';
import type { AuditEventInput, Clock, Ledger, NewEnrollment } from '../ports';
import {
  type FormFields,
  type IdVerificationCallback,
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

/** A callback read (its allowlisted fields only) and waiting to be committed. */
export interface ReceivedCallback {
  callback: IdVerificationCallback;
  sourceAddress: string | undefined;
}

/**
 * Invariants 1, 2 and 5: the allowlisted fields of NETVERIFYID callbacks are committed,
 * once per scan reference, with their audit entries, before the HTTP layer answers 200.
 * Several callbacks are committed in one transaction (group commit, `IntakeBatcher`): one
 * statement inserts the enrollments, one appends the audit entries. Rejections that the
 * callback alone decides are recorded here; nothing is fetched. Results are in the order
 * of `received`; a scan reference repeated in it is created once (the first one counts).
 */
export async function receiveIdVerificationCallbacks(
  deps: IntakeDeps,
  options: IntakeOptions,
  received: readonly ReceivedCallback[],
): Promise<IntakeResult[]> {
  const now = deps.clock.now();
  return deps.ledger.transaction(async (tx) => {
    const refs = [...new Set(received.map((r) => r.callback.enrollmentReference))];
    const intents =
      options.binding === 'intent'
        ? new Map((await tx.intents.getMany(refs)).map((i) => [i.enrollmentReference, i]))
        : undefined;

    // One candidate row per scan reference: the first delivery in the batch.
    const candidates = new Map<string, { enrollment: NewEnrollment; from: ReceivedCallback }>();
    for (const from of received) {
      const { callback, sourceAddress } = from;
      const ref = callback.enrollmentReference;
      if (candidates.has(ref)) continue;
      // The candidate is kept only once it is known not to be PII.
      const userReference = isValidUserReference(callback.userReferenceCandidate)
        ? callback.userReferenceCandidate
        : null;
      let reason: RejectionReason | null = null;
      if (userReference === null) {
        reason = 'invalid_user_reference';
      } else if (intents) {
        const intent = intents.get(ref);
        if (!intent) reason = 'unexpected_enrollment';
        else if (intent.userReference !== userReference) reason = 'user_reference_mismatch';
      }
      reason ??= ineligibilityOf(callback);
      const iv =
        typeof callback.identityVerification === 'object' ? callback.identityVerification : null;
      candidates.set(ref, {
        from,
        enrollment: {
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
        },
      });
    }
    const rows = [...candidates.values()];
    const created = await tx.enrollments.insertMany(
      rows.map((r) => r.enrollment),
      now,
    );
    // Repeated deliveries of callbacks committed earlier: answered with what was recorded.
    const known = refs.filter((ref) => !created.has(ref));
    const existing = new Map(
      (await tx.enrollments.getMany(known)).map((e) => [e.enrollmentReference, e]),
    );

    const entries: AuditEventInput[] = [];
    for (const { enrollment, from } of rows) {
      if (!created.has(enrollment.enrollmentReference)) continue;
      const subject = {
        enrollmentReference: enrollment.enrollmentReference,
        userReference: enrollment.userReference,
      };
      entries.push({
        type: 'enrollment.received',
        actor: 'jumio',
        ...subject,
        details: {
          verificationStatus: from.callback.verificationStatus,
          scanSource: from.callback.scanSource,
          sourceAddress: from.sourceAddress ?? null,
        },
      });
      if (enrollment.reason) {
        entries.push({
          type: 'enrollment.rejected',
          actor: 'system',
          ...subject,
          details: { reason: enrollment.reason, stage: 'callback' },
        });
      }
    }
    if (entries.length > 0) await tx.audit.appendMany(entries);

    const reported = new Set<string>();
    return received.map(({ callback }): IntakeResult => {
      const ref = callback.enrollmentReference;
      const first = created.has(ref) && !reported.has(ref);
      reported.add(ref);
      const record = first
        ? candidates.get(ref)!.enrollment
        : (existing.get(ref) ?? candidates.get(ref)!.enrollment);
      return {
        enrollmentReference: ref,
        created: first,
        state: record.state === 'REJECTED' ? 'REJECTED' : 'PENDING',
        reason: (record.reason as RejectionReason | null) ?? null,
      };
    });
  });
}

/** One callback, in a transaction of its own (the CLI and tests; HTTP uses the batcher). */
export async function receiveIdVerificationCallback(
  deps: IntakeDeps,
  options: IntakeOptions,
  fields: FormFields,
  sourceAddress: string | undefined,
): Promise<IntakeResult> {
  const callback = parseIdVerificationCallback(fields, options.userReferenceField);
  const [result] = await receiveIdVerificationCallbacks(deps, options, [
    { callback, sourceAddress },
  ]);
  return result!;
}

/**
 * The HTTP intake: callbacks are read at once (a malformed one is refused on its own, with
 * CallbackFormatError) and committed in groups. `receive` settles after the commit holding
 * the callback; a full queue refuses with DependencyError (503: Jumio retries).
 */
export class IntakeBatcher {
  private readonly group: GroupCommit<ReceivedCallback, IntakeResult>;

  constructor(
    private readonly deps: IntakeDeps,
    private readonly options: IntakeOptions,
    batch: GroupCommitOptions,
  ) {
    this.group = new GroupCommit(
      (items) => receiveIdVerificationCallbacks(deps, options, items),
      batch,
    );
  }

  receive(fields: FormFields, sourceAddress: string | undefined): Promise<IntakeResult> {
    const callback = parseIdVerificationCallback(fields, this.options.userReferenceField);
    return this.group.submit({ callback, sourceAddress });
  }

  /** Whether this intake commits to exactly these (the same objects). */
  serves(deps: IntakeDeps, options: IntakeOptions): boolean {
    return (
      deps.ledger === this.deps.ledger && deps.clock === this.deps.clock && options === this.options
    );
  }

  /** Callbacks received and not yet answered (waiting for or in a commit). */
  get pending(): number {
    return this.group.pending;
  }
}
