import { randomBytes, randomUUID } from 'node:crypto';
import type { BlobStores } from '../blobs';
import { VaultError } from '../errors';
import { NotFoundError } from '../enrollment/admin';
import { facemapPrefix } from '../enrollment/pipeline';
import type { JumioApi } from '../jumio';
import type {
  Clock,
  EnrollmentRecord,
  ErasureReason,
  ErasureRecord,
  Ledger,
  LedgerTx,
  LegalHold,
  Logger,
} from '../ports';
import { finalize, type FinalizePolicy } from '../authentication/record';
import {
  errorSummary,
  type Backoff,
  type Job,
  type StepResult,
  type WorkHooks,
  Worker,
} from '../work';

/** 409: a legal hold pauses erasure and retention for this person. */
export class LegalHoldError extends VaultError {
  constructor(hold: LegalHold) {
    super('conflict', `a legal hold (${hold.reference}) is in place for this user reference`);
  }
}

/** What an erasure proves once DONE: no user data, no biometric bytes. */
export interface ErasureReceipt {
  erasureId: string;
  state: 'PENDING' | 'DONE';
  userReference: string;
  enrollmentReferences: string[];
  /** Every blob key destroyed (all versions); null while PENDING. */
  blobKeysDestroyed: string[] | null;
  erasedAt: string | null;
  reason: ErasureReason;
  ticket: string | null;
  requestedBy: string;
  requestedAt: string;
  /** The sequence of the `erasure.completed` audit entry; null while PENDING. */
  auditSequence: number | null;
  lastError?: string;
}

export function toReceipt(e: ErasureRecord): ErasureReceipt {
  return {
    erasureId: e.erasureId,
    state: e.state,
    userReference: e.userReference,
    enrollmentReferences: e.enrollmentReferences,
    blobKeysDestroyed: e.blobKeysDestroyed,
    erasedAt: e.erasedAt?.toISOString() ?? null,
    reason: e.reason,
    ticket: e.ticket,
    requestedBy: e.requestedBy,
    requestedAt: e.requestedAt.toISOString(),
    auditSequence: e.auditSequence,
    ...(e.lastError ? { lastError: e.lastError } : {}),
  };
}

/**
 * The user's unfinished authentications end EXPIRED (reason `erased`, source `erased`), in
 * the erasure's transaction, before its audit entries: their rows are locked first, then
 * each is finalized as any final state is (audited, the calling service notified, the
 * transaction deleted at Jumio by the authentications job). Returns the references.
 */
export async function cancelUnfinishedAuthentications(
  tx: LedgerTx,
  userReference: string,
  now: Date,
  policy: FinalizePolicy,
): Promise<string[]> {
  const unfinished = [];
  // At most a handful: the per-user rate limit bounds initiates per hour.
  for (const listed of await tx.authentications.list({
    userReference,
    state: 'INITIATED',
    limit: 1000,
  })) {
    const a = await tx.authentications.get(listed.authenticationReference, { forUpdate: true });
    if (a?.state === 'INITIATED') unfinished.push(a);
  }
  for (const a of unfinished) {
    await finalize(tx, a, { state: 'EXPIRED', reason: 'erased', source: 'erased' }, now, policy);
  }
  return unfinished.map((a) => a.authenticationReference);
}

export interface ErasureDeps {
  ledger: Ledger;
  blobs: BlobStores;
  jumio: JumioApi;
  clock: Clock;
  logger: Logger;
  /** How cancelled authentications are finalized (deletion at Jumio, notifications). */
  authentications: FinalizePolicy;
  hooks?: WorkHooks;
  /** How long a claimed erasure stays this worker's (WORKER_LEASE_MS). */
  leaseMs?: number;
}

export interface ErasureRequest {
  userReference: string;
  reason: ErasureReason;
  ticket?: string | null;
  actor: string;
  /** Only these enrollments (the retention purge); all of the user's when absent. */
  enrollmentReferences?: string[];
}

/** Columns of a tombstone cleared at once: what came with the callback beyond references. */
const TOMBSTONE_CLEARS = {
  sourceAddress: null,
  callbackFacemapUrl: null,
  facemapUrl: null,
  verificationReason: null,
  scanSource: null,
  lastError: null,
  leaseOwner: null,
  leaseUntil: null,
  nextAttemptAt: null,
} as const;

/**
 * Destroys every blob version of a user's enrollments (all states) and leaves ERASED
 * tombstones and a receipt (GDPR Art. 17; BIPA destruction by retention goes the same way).
 * The enrollments are ERASED at once (the pipeline stops, a late callback finds the
 * reference taken); the blobs, Jumio's copies and the receipt follow on the `erasures`
 * queue, PENDING until every blob is gone. A request for a user whose erasure is pending,
 * or who has nothing left to erase, answers the existing erasure.
 */
export class ErasureService implements Job<ErasureRecord> {
  readonly queue = 'erasures' as const;
  /** Never FAILED: a store that fails is retried for as long as it takes (visibly). */
  readonly backoff: Backoff = { baseMs: 5_000, maxMs: 15 * 60_000, maxAttempts: Infinity };
  private readonly worker: Worker<ErasureRecord>;
  private readonly leaseMs: number;

  constructor(private readonly deps: ErasureDeps) {
    this.leaseMs = deps.leaseMs ?? 5 * 60_000;
    this.worker = new Worker(this, deps, { leaseMs: this.leaseMs, hooks: deps.hooks });
  }

  /** Advances due erasures (worker loop; tests step it). */
  runOnce(): Promise<number> {
    return this.worker.runOnce(10);
  }

  async request(input: ErasureRequest): Promise<{ erasure: ErasureRecord; created: boolean }> {
    const now = this.deps.clock.now();
    const owner = `erasure-request-${randomBytes(6).toString('hex')}`;
    const outcome = await this.deps.ledger.transaction(async (tx) => {
      // Row locks first, the audit chain head last (see AuditRepository.append).
      const hold = await tx.legalHolds.get(input.userReference, { forUpdate: true });
      if (hold) throw new LegalHoldError(hold);
      const latest = await tx.erasures.latestForUser(input.userReference);
      if (latest?.state === 'PENDING') return { erasure: latest, created: false };
      const wanted = input.enrollmentReferences ? new Set(input.enrollmentReferences) : null;
      const targets: EnrollmentRecord[] = [];
      for (const listed of await tx.enrollments.listByUser(input.userReference)) {
        if (wanted && !wanted.has(listed.enrollmentReference)) continue;
        const e = await tx.enrollments.get(listed.enrollmentReference, { forUpdate: true });
        if (e && e.state !== 'ERASED') targets.push(e);
      }
      if (targets.length === 0) {
        if (latest) return { erasure: latest, created: false };
        throw new NotFoundError('no enrollment for this user reference');
      }
      const erasureId = randomUUID();
      for (const e of targets) {
        await tx.enrollments.update(
          e.enrollmentReference,
          {
            ...TOMBSTONE_CLEARS,
            state: 'ERASED',
            stateBeforeErasure: e.state,
            reason: input.reason,
            erasureId,
          },
          now,
          null,
        );
      }
      const cancelled = await cancelUnfinishedAuthentications(
        tx,
        input.userReference,
        now,
        this.deps.authentications,
      );
      // A pipeline step in flight lost its lease above; its blob write, if any, lands
      // before its lease ends, so the destruction waits for that.
      const leasesEnd = Math.max(
        now.getTime(),
        ...targets.map((e) => e.leaseUntil?.getTime() ?? 0),
      );
      const erasure: ErasureRecord = {
        erasureId,
        userReference: input.userReference,
        enrollmentReferences: targets.map((e) => e.enrollmentReference),
        reason: input.reason,
        ticket: input.ticket ?? null,
        requestedBy: input.actor,
        state: 'PENDING',
        blobs: targets
          .filter((e) => e.blobKey && !e.blobDestroyedAt)
          .map((e) => ({ key: e.blobKey!, store: e.blobStore })),
        blobKeysDestroyed: null,
        requestedAt: now,
        erasedAt: null,
        auditSequence: null,
        attempts: 0,
        nextAttemptAt: new Date(leasesEnd),
        lastError: null,
      };
      const runNow = leasesEnd === now.getTime();
      await tx.erasures.insert(
        erasure,
        runNow ? { owner, until: new Date(now.getTime() + this.leaseMs) } : undefined,
      );
      await tx.audit.append({
        type: 'erasure.requested',
        actor: input.actor,
        userReference: input.userReference,
        details: {
          erasureId,
          reason: input.reason,
          ticket: erasure.ticket,
          enrollmentReferences: erasure.enrollmentReferences,
          states: Object.fromEntries(targets.map((e) => [e.enrollmentReference, e.state])),
          authenticationsCancelled: cancelled,
        },
      });
      return { erasure, created: true, runNow };
    });
    if (!outcome.created || !('runNow' in outcome) || !outcome.runNow) return outcome;
    // The request does the destruction itself when it can; a failure leaves it to the worker.
    return { erasure: await this.runLeased(outcome.erasure, owner), created: true };
  }

  async get(erasureId: string): Promise<ErasureRecord> {
    const erasure = await this.deps.ledger.transaction((tx) => tx.erasures.get(erasureId));
    if (!erasure) throw new NotFoundError('no erasure with this id');
    return erasure;
  }

  /** The first step under the request's own lease, fenced and settled as a worker would. */
  private async runLeased(erasure: ErasureRecord, owner: string): Promise<ErasureRecord> {
    let result: StepResult;
    try {
      result = await this.perform(erasure);
    } catch (error) {
      const lastError = errorSummary(error);
      this.deps.logger.warn({ erasureId: erasure.erasureId, err: lastError }, 'erasure pending');
      result = {
        attempts: 1,
        lastError,
        nextAttemptAt: new Date(this.deps.clock.now().getTime() + this.backoff.baseMs),
      };
    }
    return this.deps.ledger.transaction(async (tx) => {
      if (await tx.queues.holds('erasures', erasure.erasureId, owner)) {
        await result.apply?.(tx);
        await tx.queues.settle(
          'erasures',
          erasure.erasureId,
          {
            attempts: result.attempts ?? 0,
            nextAttemptAt: result.nextAttemptAt,
            lastError: result.lastError ?? null,
          },
          this.deps.clock.now(),
        );
      }
      return (await tx.erasures.get(erasure.erasureId))!;
    });
  }

  load(tx: LedgerTx, key: string): Promise<ErasureRecord | null> {
    return tx.erasures.get(key);
  }

  stepOf(row: ErasureRecord): string | null {
    return row.state === 'PENDING' ? 'destroy' : null;
  }

  attemptsOf(row: ErasureRecord): number {
    return row.attempts;
  }

  async exhaust(): Promise<null> {
    return null;
  }

  /**
   * Every recorded blob, through the store its row names, then every other blob under the
   * enrollments' prefixes (earlier store attempts); then Jumio's copies. Any failure
   * throws: the erasure stays PENDING and is retried from the start (all idempotent).
   */
  async perform(erasure: ErasureRecord): Promise<StepResult> {
    const destroyed = new Set<string>();
    for (const blob of erasure.blobs) {
      await this.deps.blobs.holding(blob.store).delete(blob.key);
      destroyed.add(blob.key);
    }
    const store = this.deps.blobs.current;
    for (const ref of erasure.enrollmentReferences) {
      let cursor: string | undefined;
      do {
        const page = await store.list(facemapPrefix(ref), { cursor });
        for (const key of page.keys) {
          await store.delete(key);
          destroyed.add(key);
        }
        cursor = page.nextCursor;
      } while (cursor);
    }
    const rows = await this.deps.ledger.transaction((tx) =>
      tx.enrollments.getMany(erasure.enrollmentReferences),
    );
    const atJumio = rows.filter((e) => e.jumioDeletedAt === null);
    for (const e of atJumio) await this.deps.jumio.deleteScan(e.enrollmentReference);
    const now = this.deps.clock.now();
    const blobKeysDestroyed = [...destroyed].sort();
    return {
      nextAttemptAt: null,
      apply: async (tx) => {
        for (const e of rows) {
          await tx.enrollments.update(
            e.enrollmentReference,
            {
              erasedAt: now,
              ...(e.blobKey && !e.blobDestroyedAt ? { blobDestroyedAt: now } : {}),
              ...(e.jumioDeletedAt === null ? { jumioDeletedAt: now } : {}),
            },
            now,
            null,
          );
        }
        const subject = { actor: 'system', userReference: erasure.userReference };
        for (const e of rows) {
          await tx.audit.append({
            ...subject,
            type: 'enrollment.erased',
            enrollmentReference: e.enrollmentReference,
            details: {
              erasureId: erasure.erasureId,
              reason: erasure.reason,
              stateBeforeErasure: e.stateBeforeErasure,
              blobKey: e.blobKey,
              deletedAtJumio: e.jumioDeletedAt === null,
            },
          });
        }
        const completed = await tx.audit.append({
          ...subject,
          type: erasure.reason === 'retention' ? 'retention.purged' : 'erasure.completed',
          details: {
            erasureId: erasure.erasureId,
            reason: erasure.reason,
            enrollmentReferences: erasure.enrollmentReferences,
            blobKeysDestroyed,
          },
        });
        await tx.erasures.complete(erasure.erasureId, {
          blobKeysDestroyed,
          erasedAt: now,
          auditSequence: completed.seq,
        });
      },
    };
  }
}

/** `PUT .../legal-hold`: pauses erasure and retention for the user. Audited. */
export async function placeLegalHold(
  deps: { ledger: Ledger; clock: Clock },
  input: { userReference: string; reference: string; reason: string },
  actor: string,
): Promise<LegalHold> {
  const hold: LegalHold = { ...input, placedBy: actor, placedAt: deps.clock.now() };
  await deps.ledger.transaction(async (tx) => {
    await tx.legalHolds.put(hold);
    await tx.audit.append({
      type: 'legal_hold.placed',
      actor,
      userReference: input.userReference,
      details: { reference: input.reference, reason: input.reason },
    });
  });
  return hold;
}

/** `DELETE .../legal-hold`: erasure and retention apply again. Audited. */
export async function releaseLegalHold(
  deps: { ledger: Ledger },
  input: { userReference: string; reference: string; reason: string },
  actor: string,
): Promise<void> {
  await deps.ledger.transaction(async (tx) => {
    const hold = await tx.legalHolds.get(input.userReference, { forUpdate: true });
    if (!hold) throw new NotFoundError('no legal hold for this user reference');
    await tx.legalHolds.remove(input.userReference);
    await tx.audit.append({
      type: 'legal_hold.released',
      actor,
      userReference: input.userReference,
      details: { reference: input.reference, reason: input.reason, placedAs: hold.reference },
    });
  });
}

/** `POST .../purpose-satisfied`: the user's retention deadline becomes now. Audited. */
export async function markPurposeSatisfied(
  deps: { ledger: Ledger; clock: Clock },
  userReference: string,
  actor: string,
): Promise<{ userReference: string; purposeSatisfiedAt: string; enrollments: number }> {
  const now = deps.clock.now();
  const enrollments = await deps.ledger.transaction(async (tx) => {
    const all = await tx.enrollments.listByUser(userReference);
    if (all.length === 0) throw new NotFoundError('no enrollment for this user reference');
    const marked = await tx.inventory.markPurposeSatisfied(userReference, now);
    await tx.audit.append({
      type: 'retention.purpose_satisfied',
      actor,
      userReference,
      details: { enrollments: marked },
    });
    return marked;
  });
  return { userReference, purposeSatisfiedAt: now.toISOString(), enrollments };
}
