import { createHash, randomBytes } from 'node:crypto';
import { BlobStores } from '../blobs';
import { DependencyError } from '../errors';
import {
  FacemapTooLargeError,
  isFacemapUrlOf,
  type JumioApi,
  JumioNotFoundError,
  UnsafeFacemapUrlError,
} from '../jumio';
import type {
  AuditEventInput,
  Clock,
  EnrollmentPatch,
  EnrollmentRecord,
  Envelope,
  Ledger,
  LedgerTx,
  Logger,
} from '../ports';
import { errorSummary, type Job, type StepResult, type WorkHooks, Worker } from '../work';
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
  /** Consecutive failures of a step before the enrollment is FAILED (steps before storing). */
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
  blobs: BlobStores;
  envelope: Envelope;
  jumio: JumioApi;
  clock: Clock;
  logger: Logger;
  hashUserReference: UserReferenceHasher;
}

export interface PipelineOptions {
  userReferenceField: UserReferenceField;
  /** `intent`: the user reference is bound by an internal service, not only by Jumio. */
  binding?: 'none' | 'intent';
  retry?: Partial<RetryPolicy>;
  /** How long a claimed row stays ours; longer than any single step can take. */
  leaseMs?: number;
  /** Rows one `runOnce` advances at most. */
  batchSize?: number;
  workerId?: string;
  /** Test hook: runs after a step committed (crash injection). */
  afterStep?: (step: Step, enrollmentReference: string) => Promise<void> | void;
  /** Test hook: runs after a step's I/O, before its commit (crash injection). */
  beforeCommit?: (step: Step, enrollmentReference: string) => Promise<void> | void;
  observe?: WorkHooks['observe'];
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

/**
 * Steps that may end the enrollment FAILED when their budget is spent. Later steps hold a
 * stored facemap (and Jumio's copy may already be gone): they are retried for as long as
 * it takes, visible through their attempts, last error and the queue's oldest-due age.
 */
const MAY_FAIL: ReadonlySet<string> = new Set<Step>(['confirm', 'store']);

/** All blobs of one enrollment live under this prefix; each store attempt has its own key. */
export function facemapPrefix(enrollmentReference: string): string {
  return `facemaps/${enrollmentReference}/`;
}

/** States whose recorded blob the vault holds; any other blob of an enrollment is a stray. */
export const HOLDING_STATES: ReadonlySet<string> = new Set(['STORED', 'ACTIVE', 'PARKED']);

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A terminal outcome decided by a step (not an error to retry). */
class Rejection {
  constructor(readonly reason: string) {}
}

/** Jumio still works on the scan: poll again on Jumio's schedule. */
class StillPending {}

/**
 * The order of two scans of one person: Jumio's own transaction date (from the Retrieval
 * API over TLS), else the callback's. Null when neither is known.
 */
function scanDate(e: EnrollmentRecord): Date | null {
  return e.jumioTransactionDate ?? e.transactionDate;
}

/**
 * The enrollment pipeline: a job on the shared worker mechanism (core/work.ts). Each step
 * does its network and storage work under the row's lease, outside any transaction, and
 * commits the new state with its audit entries in one transaction fenced by that lease.
 */
export class EnrollmentPipeline implements Job<EnrollmentRecord> {
  readonly queue = 'enrollments' as const;
  readonly backoff: RetryPolicy;
  private readonly worker: Worker<EnrollmentRecord>;
  private readonly batchSize: number;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly options: PipelineOptions,
  ) {
    this.backoff = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.batchSize = options.batchSize ?? 10;
    this.worker = new Worker(this, deps, {
      owner: options.workerId,
      leaseMs: options.leaseMs,
      random: options.random,
      hooks: {
        beforeCommit: (_q, step, key) => options.beforeCommit?.(step as Step, key),
        afterCommit: (_q, step, key) => options.afterStep?.(step as Step, key),
        observe: options.observe,
      },
    });
  }

  get workerId(): string {
    return this.worker.owner;
  }

  /** Advances due enrollments by one step each; returns how many were handled. */
  runOnce(): Promise<number> {
    return this.worker.runOnce(this.batchSize);
  }

  load(tx: LedgerTx, key: string): Promise<EnrollmentRecord | null> {
    return tx.enrollments.get(key);
  }

  stepOf(e: EnrollmentRecord): Step | null {
    return nextStep(e);
  }

  attemptsOf(e: EnrollmentRecord): number {
    return e.attempts;
  }

  async perform(e: EnrollmentRecord, step: string): Promise<StepResult> {
    try {
      switch (step as Step) {
        case 'confirm':
          return await this.confirm(e);
        case 'store':
          return await this.store(e);
        case 'delete_at_jumio':
          return await this.deleteAtJumio(e);
        case 'activate':
          return this.activate(e);
        case 'destroy_blob':
          return await this.destroyBlob(e);
      }
    } catch (error) {
      if (error instanceof Rejection) return this.rejected(e, error.reason);
      if (error instanceof StillPending) return this.stillPending(e);
      throw error;
    }
    throw new Error(`unknown enrollment step ${step}`);
  }

  async exhaust(
    e: EnrollmentRecord,
    step: string,
    attempts: number,
    lastError: string,
  ): Promise<StepResult | null> {
    if (!MAY_FAIL.has(step)) return null;
    return this.failed(e, attempts, lastError);
  }

  private subject(e: EnrollmentRecord) {
    return { enrollmentReference: e.enrollmentReference, userReference: e.userReference };
  }

  /** Writes `patch` and the audit entries (the lease is checked by the worker). */
  private apply(
    e: EnrollmentRecord,
    patch: EnrollmentPatch,
    audits: AuditEventInput[],
  ): StepResult['apply'] {
    return async (tx) => {
      await tx.enrollments.update(e.enrollmentReference, patch, this.deps.clock.now(), null);
      for (const audit of audits) tx.audit.record(audit);
    };
  }

  /**
   * Invariant 4: the unsigned callback is confirmed against the Retrieval API, which must
   * name the same scan and the same person, and offer the facemap only at its own path.
   */
  private async confirm(e: EnrollmentRecord): Promise<StepResult> {
    let details;
    try {
      details = await this.deps.jumio.getScanDetails(e.enrollmentReference);
    } catch (error) {
      if (error instanceof JumioNotFoundError) throw new Rejection('retrieval_not_found');
      throw error;
    }
    if (details.status === 'PENDING') throw new StillPending();
    if (details.scanReference !== e.enrollmentReference) {
      throw new Rejection('retrieval_scan_mismatch');
    }
    const agrees =
      details.status === 'DONE' &&
      details.verificationStatus === 'APPROVED_VERIFIED' &&
      details.similarity === 'MATCH' &&
      details.validity === true;
    if (!agrees) throw new Rejection('retrieval_mismatch');
    const retrievedUser =
      this.options.userReferenceField === 'customerId'
        ? details.customerId
        : details.merchantScanReference;
    // Without an intent, the callback (unsigned) is the only other source of the person:
    // Jumio must confirm it. With an intent, an internal service bound it; Jumio may be
    // silent, but must not name someone else.
    if (retrievedUser === null && this.options.binding !== 'intent') {
      throw new Rejection('retrieval_user_reference_missing');
    }
    if (retrievedUser !== null && retrievedUser !== e.userReference) {
      throw new Rejection('retrieval_user_reference_mismatch');
    }
    for (const url of [details.facemapHref, e.callbackFacemapUrl]) {
      if (url && !isFacemapUrlOf(url, e.enrollmentReference)) {
        throw new Rejection('unsafe_facemap_url');
      }
    }
    const facemapUrl = details.facemapHref ?? e.callbackFacemapUrl;
    if (!facemapUrl) throw new Rejection('no_facemap');
    const now = this.deps.clock.now();
    return {
      apply: this.apply(
        e,
        { confirmedAt: now, facemapUrl, jumioTransactionDate: details.transactionDate },
        [
          {
            type: 'enrollment.confirmed',
            actor: 'system',
            ...this.subject(e),
            details: { source: details.facemapHref ? 'retrieval' : 'callback' },
          },
        ],
      ),
      nextAttemptAt: now,
    };
  }

  /**
   * Download, encrypt, write, read back, decrypt, compare (invariants 3, 5, 6). Each
   * attempt writes its own key, so a slow worker that lost its lease can never overwrite
   * the blob another worker recorded; strays are swept before Jumio's copy is deleted.
   */
  private async store(e: EnrollmentRecord): Promise<StepResult> {
    if (!e.userReference || !e.facemapUrl) throw new Rejection('no_facemap');
    let plaintext: Uint8Array;
    try {
      plaintext = await this.deps.jumio.downloadFacemap(e.facemapUrl, e.enrollmentReference);
    } catch (error) {
      if (error instanceof UnsafeFacemapUrlError) throw new Rejection('unsafe_facemap_url');
      if (error instanceof FacemapTooLargeError) throw new Rejection('facemap_too_large');
      if (error instanceof JumioNotFoundError) throw new Rejection('facemap_not_found');
      throw error;
    }
    let decrypted: Uint8Array | undefined;
    const store = this.deps.blobs.current;
    try {
      if (plaintext.byteLength === 0) throw new Rejection('empty_facemap');
      const context = facemapContext(
        e.enrollmentReference,
        e.userReference,
        this.deps.hashUserReference,
      );
      const { ciphertext, keyId } = await this.deps.envelope.encrypt(plaintext, context);
      const blobKey = `${facemapPrefix(e.enrollmentReference)}${randomBytes(8).toString('hex')}.bin`;
      await store.put(blobKey, ciphertext);
      const readBack = await store.get(blobKey);
      const ciphertextSha256 = sha256(ciphertext);
      if (sha256(readBack) !== ciphertextSha256) {
        throw new DependencyError('blob store', 'read-back differs from what was written');
      }
      decrypted = await this.deps.envelope.decrypt(readBack, context);
      if (sha256(decrypted) !== sha256(plaintext)) {
        throw new DependencyError('envelope', 'decrypted facemap differs from the download');
      }
      const now = this.deps.clock.now();
      const facts = {
        blobKey,
        blobStore: store.location,
        facemapBytes: plaintext.byteLength,
        ciphertextSha256,
        keyId,
      };
      return {
        apply: this.apply(e, { ...facts, state: 'STORED', storedAt: now }, [
          { type: 'facemap.stored', actor: 'system', ...this.subject(e), details: facts },
        ]),
        nextAttemptAt: now,
      };
    } finally {
      // The plaintext lives in memory only, and only as long as this step.
      plaintext.fill(0);
      decrypted?.fill(0);
    }
  }

  /** Invariant 3: only now, with our copy proven, is Jumio's copy deleted. */
  private async deleteAtJumio(e: EnrollmentRecord): Promise<StepResult> {
    await this.sweep(e, e.blobKey);
    await this.deps.jumio.deleteScan(e.enrollmentReference);
    const now = this.deps.clock.now();
    return {
      apply: this.apply(e, { jumioDeletedAt: now }, [
        { type: 'enrollment.deleted_at_jumio', actor: 'system', ...this.subject(e) },
      ]),
      nextAttemptAt: now,
    };
  }

  /**
   * ACTIVE, superseding the user's previous facemap (at most one ACTIVE per user). The
   * newer scan wins; when the order cannot be established, no facemap is destroyed: the
   * current one stays ACTIVE and this one is PARKED for an operator to resolve.
   */
  private activate(e: EnrollmentRecord): StepResult {
    const now = this.deps.clock.now();
    return {
      nextAttemptAt: null,
      apply: async (tx) => {
        const current = await tx.enrollments.findActive(e.userReference!, { forUpdate: true });
        const audit = (type: string, of: EnrollmentRecord, details?: Record<string, unknown>) =>
          tx.audit.record({ type, actor: 'system', ...this.subject(of), details });
        const activate = async () => {
          await tx.enrollments.update(
            e.enrollmentReference,
            { state: 'ACTIVE', activatedAt: now },
            now,
            null,
          );
          audit('enrollment.activated', e);
        };
        if (!current || current.enrollmentReference === e.enrollmentReference) {
          await activate();
          return;
        }
        const mine = scanDate(e);
        const theirs = scanDate(current);
        if (!mine || !theirs || mine.getTime() === theirs.getTime()) {
          const reason = !mine || !theirs ? 'scan_date_unknown' : 'scan_date_equal';
          await tx.enrollments.update(
            e.enrollmentReference,
            { state: 'PARKED', reason },
            now,
            null,
          );
          audit('enrollment.parked', e, {
            reason,
            activeEnrollment: current.enrollmentReference,
          });
          return;
        }
        const [loser, winner] = mine < theirs ? [e, current] : [current, e];
        await supersede(tx, loser, now);
        if (winner === e) await activate();
        audit('enrollment.superseded', loser, {
          supersededBy: winner.enrollmentReference,
        });
        // A superseded enrollment is due at once: its blob is destroyed next.
        return loser === e ? { nextAttemptAt: now } : undefined;
      },
    };
  }

  /** A superseded facemap is destroyed, every version, with evidence kept. */
  private async destroyBlob(e: EnrollmentRecord): Promise<StepResult> {
    const now = this.deps.clock.now();
    let store;
    try {
      store = this.deps.blobs.holding(e.blobStore);
    } catch (error) {
      // Never audit a destruction that did not happen: say loudly why it cannot, once.
      this.deps.logger.error(
        { enrollmentReference: e.enrollmentReference, err: errorSummary(error) },
        'superseded facemap cannot be destroyed: its blob store is not configured',
      );
      return {
        apply:
          e.attempts === 0
            ? this.apply(e, {}, [
                {
                  type: 'facemap.destroy_refused',
                  actor: 'system',
                  ...this.subject(e),
                  details: {
                    blobKey: e.blobKey,
                    blobStore: e.blobStore,
                    reason: 'store_unavailable',
                  },
                },
              ])
            : undefined,
        attempts: e.attempts + 1,
        lastError: errorSummary(error),
        nextAttemptAt: new Date(now.getTime() + this.backoff.maxMs),
      };
    }
    await store.delete(e.blobKey!);
    await this.sweep(e, null);
    return {
      apply: this.apply(e, { blobDestroyedAt: now }, [
        {
          type: 'facemap.destroyed',
          actor: 'system',
          ...this.subject(e),
          details: { blobKey: e.blobKey, blobStore: store.location, reason: 'superseded' },
        },
      ]),
      nextAttemptAt: null,
    };
  }

  /** Deletes this enrollment's blobs in the current store other than `keep`. */
  private async sweep(e: EnrollmentRecord, keep: string | null): Promise<void> {
    const store = this.deps.blobs.current;
    let cursor: string | undefined;
    do {
      const page = await store.list(facemapPrefix(e.enrollmentReference), { cursor });
      for (const key of page.keys) if (key !== keep) await store.delete(key);
      cursor = page.nextCursor;
    } while (cursor);
  }

  /** REJECTED by a step; whatever a store attempt wrote is swept first. */
  private async rejected(e: EnrollmentRecord, reason: string): Promise<StepResult> {
    await this.sweep(e, null);
    return {
      apply: this.apply(e, { state: 'REJECTED', reason }, [
        {
          type: 'enrollment.rejected',
          actor: 'system',
          ...this.subject(e),
          details: { reason, stage: 'pipeline' },
        },
      ]),
      nextAttemptAt: null,
    };
  }

  private async stillPending(e: EnrollmentRecord): Promise<StepResult> {
    const attempts = e.attempts + 1;
    if (attempts >= this.backoff.pendingMaxAttempts) {
      return this.failed(e, attempts, 'jumio_pending: still PENDING at Jumio');
    }
    const delay = this.backoff.pendingScheduleMs[e.attempts] ?? this.backoff.pendingThenMs;
    return {
      attempts,
      lastError: 'jumio_pending: scan still PENDING at Jumio',
      nextAttemptAt: new Date(this.deps.clock.now().getTime() + delay),
    };
  }

  /** FAILED (replayable) holds no ciphertext: whatever a store attempt wrote is swept. */
  private async failed(
    e: EnrollmentRecord,
    attempts: number,
    lastError: string,
  ): Promise<StepResult> {
    await this.sweep(e, null);
    return {
      apply: this.apply(e, { state: 'FAILED' }, [
        {
          type: 'enrollment.failed',
          actor: 'system',
          ...this.subject(e),
          details: { attempts, lastError, stage: nextStep(e) },
        },
      ]),
      attempts,
      lastError,
      nextAttemptAt: null,
    };
  }
}

/** Marks `e` SUPERSEDED and due, so the pipeline destroys its blob. */
export async function supersede(tx: LedgerTx, e: EnrollmentRecord, now: Date): Promise<void> {
  await tx.enrollments.update(
    e.enrollmentReference,
    { state: 'SUPERSEDED', supersededAt: now, nextAttemptAt: now, attempts: 0, lastError: null },
    now,
    null,
  );
}
