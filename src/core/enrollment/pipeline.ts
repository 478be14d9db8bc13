import { createHash, randomBytes } from 'node:crypto';
import { DependencyError, VaultError } from '../errors';
import {
  FacemapTooLargeError,
  type JumioApi,
  JumioNotFoundError,
  JumioRateLimitedError,
  JumioUpstreamError,
  UnsafeFacemapUrlError,
} from '../jumio';
import type {
  AuditEventInput,
  BlobStore,
  Clock,
  EnrollmentPatch,
  EnrollmentRecord,
  Envelope,
  Ledger,
  LedgerTx,
  Logger,
} from '../ports';
import type { UserReferenceField } from './callback';
import { facemapContext, type UserReferenceHasher } from './context';

/** Jumio's polling guidance while a scan is PENDING (seconds), then once a day. */
export const JUMIO_PENDING_SCHEDULE_MS = [40, 60, 100, 160, 240, 340, 460, 600, 760, 940].map(
  (s) => s * 1000,
);
const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetryPolicy {
  /** Backoff for transient failures: base * 2^(attempt-1), capped, with jitter. */
  baseMs: number;
  maxMs: number;
  /** Consecutive failures of one step before the enrollment is FAILED. */
  maxAttempts: number;
  /** Delays while Jumio still says PENDING; after the list, `pendingThenMs`. */
  pendingScheduleMs: number[];
  pendingThenMs: number;
  /** PENDING polls before giving up (FAILED, replayable). */
  pendingMaxAttempts: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseMs: 5_000,
  maxMs: 15 * 60_000,
  maxAttempts: 8,
  pendingScheduleMs: JUMIO_PENDING_SCHEDULE_MS,
  pendingThenMs: DAY_MS,
  pendingMaxAttempts: JUMIO_PENDING_SCHEDULE_MS.length + 14,
};

export interface PipelineDeps {
  ledger: Ledger;
  blobs: BlobStore;
  envelope: Envelope;
  jumio: JumioApi;
  clock: Clock;
  logger: Logger;
  hashUserReference: UserReferenceHasher;
}

export interface PipelineOptions {
  userReferenceField: UserReferenceField;
  retry?: Partial<RetryPolicy>;
  /** How long a claimed row stays ours; longer than any single step can take. */
  leaseMs?: number;
  batchSize?: number;
  workerId?: string;
  /** Test hook: runs after a step committed (crash injection). */
  afterStep?: (step: Step, enrollmentReference: string) => Promise<void> | void;
  random?: () => number;
}

export type Step = 'confirm' | 'store' | 'delete_at_jumio' | 'activate' | 'destroy_blob';

/** Which step an enrollment needs next, derived from durable state only. */
export function nextStep(e: EnrollmentRecord): Step | null {
  if (e.state === 'PENDING') return e.confirmedAt ? 'store' : 'confirm';
  if (e.state === 'STORED') return e.jumioDeletedAt ? 'activate' : 'delete_at_jumio';
  if (e.state === 'SUPERSEDED' && e.blobKey && !e.blobDestroyedAt) return 'destroy_blob';
  return null;
}

/** All blobs of one enrollment live under this prefix; each store attempt has its own key. */
export function facemapPrefix(enrollmentReference: string): string {
  return `facemaps/${enrollmentReference}/`;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A terminal outcome decided by a step (not an error to retry). */
class Rejection {
  constructor(readonly reason: string) {}
}

/** Jumio still works on the scan: poll again on Jumio's schedule. */
class StillPending {}

type StepOutcome = {
  patch: EnrollmentPatch;
  audits: AuditEventInput[];
  tx?: (tx: LedgerTx) => Promise<void>;
};

function errorSummary(error: unknown): string {
  // Domain errors carry PII-free messages by construction; others are reduced to a code.
  if (error instanceof VaultError) return `${error.code}: ${error.message}`.slice(0, 500);
  return `internal_error: ${error instanceof Error ? error.name : 'unknown'}`;
}

function retryAfterOf(error: unknown): number | null {
  if (error instanceof JumioRateLimitedError || error instanceof JumioUpstreamError) {
    return error.retryAfterMs;
  }
  return null;
}

/**
 * The enrollment pipeline as a reconciliation loop over durable state (design
 * "Architecture"). Each call to `runOnce` leases due enrollments (FOR UPDATE SKIP LOCKED),
 * advances each by one step, and commits the new state with its audit entries. The
 * network and storage work of a step happens outside any transaction, under the lease;
 * every commit is fenced by the lease, so a worker that lost its lease changes nothing.
 */
export class EnrollmentPipeline {
  private readonly retry: RetryPolicy;
  private readonly leaseMs: number;
  private readonly batchSize: number;
  readonly workerId: string;
  private readonly random: () => number;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly options: PipelineOptions,
  ) {
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.leaseMs = options.leaseMs ?? 5 * 60_000;
    this.batchSize = options.batchSize ?? 10;
    this.workerId = options.workerId ?? `worker-${randomBytes(6).toString('hex')}`;
    this.random = options.random ?? Math.random;
  }

  /** Advances every due enrollment by one step; returns how many were handled. */
  async runOnce(): Promise<number> {
    const now = this.deps.clock.now();
    const claimed = await this.deps.ledger.transaction((tx) =>
      tx.enrollments.claimDue(this.workerId, now, this.leaseMs, this.batchSize),
    );
    for (const enrollment of claimed) await this.advance(enrollment);
    return claimed.length;
  }

  private async advance(e: EnrollmentRecord): Promise<void> {
    const step = nextStep(e);
    if (!step) return;
    const log = this.deps.logger.child({ enrollmentReference: e.enrollmentReference, step });
    let committed = false;
    try {
      const outcome = await this.perform(step, e);
      committed = await this.commit(e, outcome);
      if (!committed) {
        log.warn({}, 'lease lost before commit; another worker owns this enrollment');
        return;
      }
      log.info({ state: outcome.patch.state ?? e.state }, 'enrollment step done');
    } catch (error) {
      if (error instanceof Rejection) {
        await this.commit(e, this.rejected(e, error.reason));
        log.info({ reason: error.reason }, 'enrollment rejected');
      } else if (error instanceof StillPending) {
        await this.reschedulePending(e);
      } else {
        await this.recordFailure(e, step, error);
        log.warn({ err: errorSummary(error) }, 'enrollment step failed');
      }
    }
    // Outside the try: a hook that throws stops this worker like a crash would.
    if (committed) await this.options.afterStep?.(step, e.enrollmentReference);
  }

  private perform(step: Step, e: EnrollmentRecord): Promise<StepOutcome> {
    switch (step) {
      case 'confirm':
        return this.confirm(e);
      case 'store':
        return this.store(e);
      case 'delete_at_jumio':
        return this.deleteAtJumio(e);
      case 'activate':
        return this.activate(e);
      case 'destroy_blob':
        return this.destroyBlob(e);
    }
  }

  private subject(e: EnrollmentRecord) {
    return { enrollmentReference: e.enrollmentReference, userReference: e.userReference };
  }

  private ready(now: Date): EnrollmentPatch {
    return { attempts: 0, nextAttemptAt: now, lastError: null, leaseOwner: null, leaseUntil: null };
  }

  /** Invariant 4: the unsigned callback is confirmed against the Retrieval API. */
  private async confirm(e: EnrollmentRecord): Promise<StepOutcome> {
    let details;
    try {
      details = await this.deps.jumio.getScanDetails(e.enrollmentReference);
    } catch (error) {
      if (error instanceof JumioNotFoundError) throw new Rejection('retrieval_not_found');
      throw error;
    }
    if (details.status === 'PENDING') throw new StillPending();
    const retrievedUser =
      this.options.userReferenceField === 'customerId'
        ? details.customerId
        : details.merchantScanReference;
    const agrees =
      details.status === 'DONE' &&
      details.verificationStatus === 'APPROVED_VERIFIED' &&
      details.similarity === 'MATCH' &&
      details.validity === true &&
      (retrievedUser === null || retrievedUser === e.userReference);
    if (!agrees) throw new Rejection('retrieval_mismatch');
    const facemapUrl = details.facemapHref ?? e.callbackFacemapUrl;
    if (!facemapUrl) throw new Rejection('no_facemap');
    const now = this.deps.clock.now();
    return {
      patch: { ...this.ready(now), confirmedAt: now, facemapUrl },
      audits: [
        {
          type: 'enrollment.confirmed',
          actor: 'system',
          ...this.subject(e),
          details: { source: details.facemapHref ? 'retrieval' : 'callback' },
        },
      ],
    };
  }

  /**
   * Download, encrypt, write, read back, decrypt, compare (invariants 3, 5, 6). Each
   * attempt writes its own key, so a slow worker that lost its lease can never overwrite
   * the blob another worker recorded; strays are swept before Jumio's copy is deleted.
   */
  private async store(e: EnrollmentRecord): Promise<StepOutcome> {
    if (!e.userReference || !e.facemapUrl) throw new Rejection('no_facemap');
    let plaintext: Uint8Array;
    try {
      plaintext = await this.deps.jumio.downloadFacemap(e.facemapUrl);
    } catch (error) {
      if (error instanceof UnsafeFacemapUrlError) throw new Rejection('unsafe_facemap_url');
      if (error instanceof FacemapTooLargeError) throw new Rejection('facemap_too_large');
      if (error instanceof JumioNotFoundError) throw new Rejection('facemap_not_found');
      throw error;
    }
    let decrypted: Uint8Array | undefined;
    try {
      if (plaintext.byteLength === 0) throw new Rejection('empty_facemap');
      const context = facemapContext(
        e.enrollmentReference,
        e.userReference,
        this.deps.hashUserReference,
      );
      const { ciphertext, keyId } = await this.deps.envelope.encrypt(plaintext, context);
      const blobKey = `${facemapPrefix(e.enrollmentReference)}${randomBytes(8).toString('hex')}.bin`;
      await this.deps.blobs.put(blobKey, ciphertext);
      const readBack = await this.deps.blobs.get(blobKey);
      const ciphertextSha256 = sha256(ciphertext);
      if (sha256(readBack) !== ciphertextSha256) {
        throw new DependencyError('blob store', 'read-back differs from what was written');
      }
      decrypted = await this.deps.envelope.decrypt(readBack, context);
      if (sha256(decrypted) !== sha256(plaintext)) {
        throw new DependencyError('envelope', 'decrypted facemap differs from the download');
      }
      const now = this.deps.clock.now();
      return {
        patch: {
          ...this.ready(now),
          state: 'STORED',
          blobKey,
          facemapBytes: plaintext.byteLength,
          ciphertextSha256,
          keyId,
          storedAt: now,
        },
        audits: [
          {
            type: 'facemap.stored',
            actor: 'system',
            ...this.subject(e),
            details: { blobKey, facemapBytes: plaintext.byteLength, ciphertextSha256, keyId },
          },
        ],
      };
    } finally {
      // The plaintext lives in memory only, and only as long as this step.
      plaintext.fill(0);
      decrypted?.fill(0);
    }
  }

  /** Invariant 3: only now, with our copy proven, is Jumio's copy deleted. */
  private async deleteAtJumio(e: EnrollmentRecord): Promise<StepOutcome> {
    await this.sweepStrays(e);
    await this.deps.jumio.deleteScan(e.enrollmentReference);
    const now = this.deps.clock.now();
    return {
      patch: { ...this.ready(now), jumioDeletedAt: now },
      audits: [{ type: 'enrollment.deleted_at_jumio', actor: 'system', ...this.subject(e) }],
    };
  }

  /** ACTIVE, superseding the user's previous facemap (at most one ACTIVE per user). */
  private async activate(e: EnrollmentRecord): Promise<StepOutcome> {
    const now = this.deps.clock.now();
    const audits: AuditEventInput[] = [];
    const outcome: StepOutcome = {
      patch: { ...this.ready(now), state: 'ACTIVE', activatedAt: now },
      audits,
      tx: async (tx) => {
        const current = await tx.enrollments.findActive(e.userReference!, { forUpdate: true });
        if (!current || current.enrollmentReference === e.enrollmentReference) {
          audits.push({ type: 'enrollment.activated', actor: 'system', ...this.subject(e) });
          return;
        }
        // A late-arriving older onboarding must not replace a newer one.
        const older =
          current.transactionDate &&
          e.transactionDate &&
          current.transactionDate > e.transactionDate;
        const [loser, winner] = older ? [e, current] : [current, e];
        if (older) {
          outcome.patch = { ...this.ready(now), state: 'SUPERSEDED', supersededAt: now };
        } else {
          await tx.enrollments.update(
            current.enrollmentReference,
            { state: 'SUPERSEDED', supersededAt: now, nextAttemptAt: now, attempts: 0 },
            now,
            null,
          );
          audits.push({ type: 'enrollment.activated', actor: 'system', ...this.subject(e) });
        }
        audits.push({
          type: 'enrollment.superseded',
          actor: 'system',
          ...this.subject(loser),
          details: { supersededBy: winner.enrollmentReference },
        });
      },
    };
    return outcome;
  }

  /** A superseded facemap is destroyed, every version, with evidence kept. */
  private async destroyBlob(e: EnrollmentRecord): Promise<StepOutcome> {
    await this.deps.blobs.delete(e.blobKey!);
    await this.sweepStrays(e, true);
    const now = this.deps.clock.now();
    return {
      patch: { ...this.ready(now), nextAttemptAt: null, blobDestroyedAt: now },
      audits: [
        {
          type: 'facemap.destroyed',
          actor: 'system',
          ...this.subject(e),
          details: { blobKey: e.blobKey, reason: 'superseded' },
        },
      ],
    };
  }

  /** Deletes blobs of this enrollment other than the recorded one (or all of them). */
  private async sweepStrays(e: EnrollmentRecord, all = false): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.deps.blobs.list(facemapPrefix(e.enrollmentReference), { cursor });
      for (const key of page.keys) {
        if (all || key !== e.blobKey) await this.deps.blobs.delete(key);
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  private rejected(e: EnrollmentRecord, reason: string): StepOutcome {
    const now = this.deps.clock.now();
    return {
      patch: { ...this.ready(now), nextAttemptAt: null, state: 'REJECTED', reason },
      audits: [
        {
          type: 'enrollment.rejected',
          actor: 'system',
          ...this.subject(e),
          details: { reason, stage: 'pipeline' },
        },
      ],
    };
  }

  private async reschedulePending(e: EnrollmentRecord): Promise<void> {
    const attempts = e.attempts + 1;
    const now = this.deps.clock.now();
    if (attempts >= this.retry.pendingMaxAttempts) {
      await this.commit(e, this.failed(e, attempts, 'jumio_pending: still PENDING at Jumio'));
      return;
    }
    const delay = this.retry.pendingScheduleMs[e.attempts] ?? this.retry.pendingThenMs;
    await this.commit(e, {
      patch: {
        attempts,
        nextAttemptAt: new Date(now.getTime() + delay),
        lastError: 'jumio_pending: scan still PENDING at Jumio',
        leaseOwner: null,
        leaseUntil: null,
      },
      audits: [],
    });
  }

  private failed(e: EnrollmentRecord, attempts: number, lastError: string): StepOutcome {
    return {
      patch: {
        state: 'FAILED',
        attempts,
        lastError,
        nextAttemptAt: null,
        leaseOwner: null,
        leaseUntil: null,
      },
      audits: [
        {
          type: 'enrollment.failed',
          actor: 'system',
          ...this.subject(e),
          details: { attempts, lastError, stage: nextStep(e) },
        },
      ],
    };
  }

  private async recordFailure(e: EnrollmentRecord, step: Step, error: unknown): Promise<void> {
    const attempts = e.attempts + 1;
    const lastError = errorSummary(error);
    // Destroying a superseded blob is retried for as long as it takes: it never "fails".
    if (attempts >= this.retry.maxAttempts && step !== 'destroy_blob') {
      await this.commit(e, this.failed(e, attempts, lastError));
      return;
    }
    const exp = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** Math.min(attempts - 1, 30));
    // Equal jitter: at least half the backoff, so retries spread without collapsing to 0.
    const backoff = exp / 2 + (this.random() * exp) / 2;
    const delay = Math.max(backoff, retryAfterOf(error) ?? 0);
    const now = this.deps.clock.now();
    await this.commit(e, {
      patch: {
        attempts,
        lastError,
        nextAttemptAt: new Date(now.getTime() + delay),
        leaseOwner: null,
        leaseUntil: null,
      },
      audits: [],
    }).catch((commitError: unknown) => {
      // The lease will expire and the step be retried; nothing is lost.
      this.deps.logger.error({ err: errorSummary(commitError) }, 'could not record a failure');
    });
  }

  /** Applies a step's outcome in one transaction, fenced by our lease. */
  private commit(e: EnrollmentRecord, outcome: StepOutcome): Promise<boolean> {
    const now = this.deps.clock.now();
    return this.deps.ledger.transaction(async (tx) => {
      const mine = await tx.enrollments.get(e.enrollmentReference, { forUpdate: true });
      if (!mine || mine.leaseOwner !== this.workerId) return false;
      await outcome.tx?.(tx);
      const ok = await tx.enrollments.update(
        e.enrollmentReference,
        outcome.patch,
        now,
        this.workerId,
      );
      if (!ok) return false;
      for (const audit of outcome.audits) await tx.audit.append(audit);
      return true;
    });
  }
}
