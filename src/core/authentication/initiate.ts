import { createHash, randomUUID } from 'node:crypto';
import type { BlobStores } from '../blobs';
import { facemapContext, type UserReferenceHasher } from '../enrollment/context';
import {
  BlobNotFoundError,
  DecryptionError,
  DependencyError,
  EncryptionContextMismatchError,
  VaultError,
} from '../errors';
import {
  JumioError,
  JumioInvalidResponseError,
  JumioRequestRejectedError,
  JumioUnauthorizedError,
  type JumioApi,
  type JumioLocale,
} from '../jumio';
import type {
  Clock,
  EnrollmentRecord,
  Envelope,
  FinalAuthenticationState,
  Ledger,
  LedgerTx,
  Logger,
} from '../ports';
import { errorSummary } from '../work';
import { AuthenticationError } from './errors';
import { finalize, applyReportedResult, type FinalizePolicy } from './record';

/** Jumio's rule: an authentication can be completed for at most 15 minutes. */
export const AUTHENTICATION_LIFETIME_MS = 15 * 60_000;
const HOUR_MS = 60 * 60_000;
/** How long an Idempotency-Key answers with its first answer. */
export const IDEMPOTENCY_TTL_MS = 24 * HOUR_MS;

export interface InitiateInput {
  userReference: string;
  /** The caller's stated reason, for the audit trail (1-200 characters). */
  purpose: string;
  successUrl?: string;
  errorUrl?: string;
  locale?: JumioLocale;
  tokenLifetimeInMinutes?: number;
  notifyUrl?: string;
}

export interface InitiateResult {
  authenticationReference: string;
  /** Only for the web journey. */
  redirectUrl?: string;
  state: 'INITIATED';
  expiresAt: string;
}

export interface InitiateSettings extends FinalizePolicy {
  /** VAULT_PUBLIC_URL + /webhooks/jumio. */
  callbackUrl: string;
  maxPerUserPerHour: number;
  /** How long past expiresAt an INITIATED authentication waits for its callback. */
  reconcileGraceMs: number;
  /**
   * How long an initiate in flight keeps other initiates of the same enrollment out: longer
   * than any Jumio call can take (the client's timeouts), so that a crashed replica's mark
   * expires on its own.
   */
  initiationTtlMs: number;
}

export interface InitiateDeps {
  ledger: Ledger;
  blobs: BlobStores;
  envelope: Envelope;
  jumio: JumioApi;
  clock: Clock;
  logger: Logger;
  hashUserReference: UserReferenceHasher;
}

/** What is stored under an Idempotency-Key once Jumio was called. */
type StoredAnswer =
  | { outcome: 'created'; result: InitiateResult }
  | {
      outcome: 'failed';
      code: AuthenticationError['code'];
      message: string;
      details: AuthenticationError['details'];
    };

interface Attempt {
  caller: string;
  input: InitiateInput;
  idempotencyKey: string | undefined;
  /** Names this initiate's in-flight mark, and links its audit entries. */
  owner: string;
  enrollment: EnrollmentRecord;
  decryptAuditId: number;
}

/** Bytes-free facts about why a stored facemap was refused. */
class IntegrityFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** Treats anything but a domain error from a ledger transaction as the ledger failing. */
function ledgerFailure(error: unknown, what: string): unknown {
  return error instanceof VaultError
    ? error
    : new DependencyError('ledger', what, { cause: error });
}

/**
 * POST /v1/authentications: decrypts the user's facemap (audited first, for a stated
 * purpose), hands it to Jumio's initiate for the minutes the journey needs, and records
 * the authentication INITIATED, superseding the enrollment's earlier unfinished ones.
 *
 * Concurrency. Jumio expires every earlier unfinished authentication of an enrollment when
 * a new one is initiated, so the vault's record must follow Jumio's order of calls, not
 * the order in which the vault's transactions happen to commit: initiates of one
 * enrollment are serialized across the Jumio call. Holding a row lock (or a session
 * advisory lock) across that call would keep a transaction and a connection open for as
 * long as Jumio takes, and on the embedded ledger (PGlite, one connection, serialized
 * transactions) stall the whole vault, callbacks included. Instead a short transaction,
 * under the enrollment's row lock, leaves a durable mark (authentication_initiations,
 * with an expiry for a replica that dies mid-call); the Jumio call happens with no
 * transaction open; a second short transaction, under the same row lock, supersedes the
 * earlier authentications, records the new one and removes the mark. A second initiate
 * for the enrollment meanwhile is answered 409 rather than queued: it would expire the
 * first at Jumio anyway.
 */
export class Initiation {
  constructor(
    private readonly deps: InitiateDeps,
    private readonly settings: InitiateSettings,
  ) {}

  async initiate(
    input: InitiateInput,
    caller: string,
    idempotencyKey?: string,
  ): Promise<{ result: InitiateResult; replayed: boolean }> {
    const requestSha256 = sha256(JSON.stringify(input, Object.keys(input).sort()));
    const begun = await this.begin(input, caller, idempotencyKey, requestSha256);
    if (begun.kind === 'replay') return { result: replay(begun.answer), replayed: true };
    if (begun.kind === 'rate_limited') {
      throw new AuthenticationError(
        'rate_limited',
        `at most ${this.settings.maxPerUserPerHour} authentications per user per hour`,
        { retryAfterSeconds: begun.retryAfterSeconds },
      );
    }
    const attempt: Attempt = { caller, input, idempotencyKey, ...begun };
    const plaintext = await this.readFacemap(attempt);
    let initiated;
    try {
      initiated = await this.deps.jumio.initiateAuthentication({
        facemap: plaintext,
        enrollmentTransactionReference: attempt.enrollment.enrollmentReference,
        userReference: input.userReference,
        callbackUrl: this.settings.callbackUrl,
        ...(input.successUrl !== undefined ? { successUrl: input.successUrl } : {}),
        ...(input.errorUrl !== undefined ? { errorUrl: input.errorUrl } : {}),
        ...(input.locale !== undefined ? { locale: input.locale } : {}),
        ...(input.tokenLifetimeInMinutes !== undefined
          ? { tokenLifetimeInMinutes: input.tokenLifetimeInMinutes }
          : {}),
      });
    } catch (error) {
      throw await this.jumioFailed(attempt, error);
    } finally {
      // The request body has been sent (or never will be): the plaintext is not needed.
      plaintext.fill(0);
    }
    return { result: await this.record(attempt, initiated), replayed: false };
  }

  /**
   * The first transaction: the idempotency record, the enrollment checks, the rate limit,
   * the in-flight mark and the `facemap.decrypted` audit entry. Nothing is decrypted unless
   * it commits (invariant 9: auditing fails closed).
   */
  private async begin(
    input: InitiateInput,
    caller: string,
    idempotencyKey: string | undefined,
    requestSha256: string,
  ): Promise<
    | { kind: 'replay'; answer: StoredAnswer }
    | { kind: 'rate_limited'; retryAfterSeconds: number }
    | { kind: 'go'; owner: string; enrollment: EnrollmentRecord; decryptAuditId: number }
  > {
    const now = this.deps.clock.now();
    const owner = randomUUID();
    const { userReference } = input;
    try {
      return await this.deps.ledger.transaction(async (tx) => {
        if (idempotencyKey !== undefined) {
          const { record, created } = await tx.idempotency.begin(
            { apiKeyName: caller, key: idempotencyKey, requestSha256 },
            now,
            IDEMPOTENCY_TTL_MS,
          );
          if (!created) {
            if (record.requestSha256 !== requestSha256) {
              throw new AuthenticationError(
                'idempotency_key_reused',
                'this Idempotency-Key was used with a different request body',
              );
            }
            if (record.response === null) {
              throw new AuthenticationError(
                'idempotency_in_progress',
                'the first request with this Idempotency-Key is still in flight',
                { retryAfterSeconds: 1 },
              );
            }
            return { kind: 'replay', answer: record.response as unknown as StoredAnswer };
          }
        }
        const enrollment = await tx.enrollments.findActive(userReference, { forUpdate: true });
        if (!enrollment) {
          // Only on the way out: the common case is one read shorter.
          const enrollments = await tx.enrollments.listByUser(userReference);
          if (enrollments.length === 0) {
            throw new AuthenticationError('not_found', 'no enrollment for this user reference');
          }
          const state = enrollments[0]!.state;
          throw new AuthenticationError(
            'enrollment_not_active',
            `the user's enrollment is ${state}, not ACTIVE`,
            { state },
          );
        }
        const subject = { enrollmentReference: enrollment.enrollmentReference, userReference };
        // Counted from the ledger, so every replica sees the same count.
        const since = new Date(now.getTime() - HOUR_MS);
        const recent = await tx.authentications.countSince(userReference, since);
        if (recent.count >= this.settings.maxPerUserPerHour) {
          if (idempotencyKey !== undefined) await tx.idempotency.release(caller, idempotencyKey);
          const freeAt = (recent.oldest ?? now).getTime() + HOUR_MS;
          const retryAfterSeconds = Math.max(1, Math.ceil((freeAt - now.getTime()) / 1000));
          tx.audit.record({
            type: 'authentication.rate_limited',
            actor: caller,
            ...subject,
            details: { limit: this.settings.maxPerUserPerHour, lastHour: recent.count },
          });
          return { kind: 'rate_limited', retryAfterSeconds };
        }
        const claimed = await tx.authentications.claimInitiation(
          enrollment.enrollmentReference,
          owner,
          now,
          this.settings.initiationTtlMs,
        );
        if (!claimed) {
          throw new AuthenticationError(
            'authentication_in_progress',
            'another authentication for this user is being initiated',
            { retryAfterSeconds: 1 },
          );
        }
        const audit = await tx.audit.append({
          type: 'facemap.decrypted',
          actor: caller,
          ...subject,
          details: { purpose: input.purpose, initiation: owner, keyId: enrollment.keyId },
        });
        return { kind: 'go', owner, enrollment, decryptAuditId: audit.id };
      });
    } catch (error) {
      throw ledgerFailure(error, 'could not commit the audit entry; nothing was decrypted');
    }
  }

  /**
   * Reads the blob through the store its row names and decrypts it with the context that
   * binds it to this enrollment and user (invariant 6): a blob copied from another record
   * is refused before anything reaches Jumio.
   */
  private async readFacemap(attempt: Attempt): Promise<Uint8Array> {
    const e = attempt.enrollment;
    let plaintext: Uint8Array | undefined;
    try {
      if (!e.blobKey || !e.userReference) throw new IntegrityFailure('no_blob_recorded');
      let ciphertext: Uint8Array;
      try {
        ciphertext = await this.deps.blobs.holding(e.blobStore).get(e.blobKey);
      } catch (error) {
        if (error instanceof BlobNotFoundError) throw new IntegrityFailure('blob_missing');
        throw error;
      }
      const context = facemapContext(
        e.enrollmentReference,
        e.userReference,
        this.deps.hashUserReference,
      );
      try {
        plaintext = await this.deps.envelope.decrypt(ciphertext, context);
      } catch (error) {
        if (error instanceof EncryptionContextMismatchError) {
          throw new IntegrityFailure('encryption_context_mismatch');
        }
        if (error instanceof DecryptionError) throw new IntegrityFailure('decryption_failed');
        throw error;
      }
      if (e.ciphertextSha256 && sha256(ciphertext) !== e.ciphertextSha256) {
        throw new IntegrityFailure('ciphertext_digest_mismatch');
      }
      return plaintext;
    } catch (error) {
      plaintext?.fill(0);
      throw await this.abandoned(attempt, error);
    }
  }

  /** Nothing went to Jumio: the mark and the idempotency record are removed; audited. */
  private async abandoned(attempt: Attempt, error: unknown): Promise<unknown> {
    const e = attempt.enrollment;
    const integrity = error instanceof IntegrityFailure ? error.reason : null;
    if (integrity) {
      this.deps.logger.error(
        { enrollmentReference: e.enrollmentReference, reason: integrity },
        'stored facemap refused: it does not belong to this enrollment or is damaged',
      );
    }
    const audited = this.settle(attempt, null, async (tx) => {
      tx.audit.record({
        type: integrity ? 'facemap.integrity_failed' : 'authentication.initiate_failed',
        actor: attempt.caller,
        enrollmentReference: e.enrollmentReference,
        userReference: e.userReference,
        details: {
          ...(integrity ? { reason: integrity } : { stage: 'read', error: errorSummary(error) }),
          blobKey: e.blobKey,
          blobStore: e.blobStore,
          decryptAudit: attempt.decryptAuditId,
        },
      });
    });
    await audited.catch((commitError: unknown) => {
      // Nothing was sent either way; the mark expires by itself.
      this.deps.logger.error({ err: errorSummary(commitError) }, 'could not record the refusal');
    });
    if (!integrity) return error;
    return new AuthenticationError(
      'facemap_integrity',
      'the stored facemap failed its integrity check; nothing was sent to Jumio',
    );
  }

  /** The initiate failed at Jumio: audited, and the answer kept for the Idempotency-Key. */
  private async jumioFailed(attempt: Attempt, error: unknown): Promise<unknown> {
    const failure = jumioFailure(error);
    const e = attempt.enrollment;
    this.deps.logger.warn(
      { enrollmentReference: e.enrollmentReference, err: errorSummary(error) },
      'Jumio initiate failed',
    );
    const answer: StoredAnswer | null = failure
      ? {
          outcome: 'failed',
          code: failure.code,
          message: failure.message,
          details: failure.details,
        }
      : null;
    await this.settle(attempt, answer, async (tx) => {
      tx.audit.record({
        type: 'authentication.initiate_failed',
        actor: attempt.caller,
        enrollmentReference: e.enrollmentReference,
        userReference: e.userReference,
        details: {
          stage: 'jumio',
          error: errorSummary(error),
          ...(failure?.details ?? {}),
          decryptAudit: attempt.decryptAuditId,
        },
      });
    }).catch((commitError: unknown) => {
      // The answer to the caller is Jumio's failure; the mark expires by itself.
      this.deps.logger.error({ err: errorSummary(commitError) }, 'could not record the failure');
    });
    return failure ?? error;
  }

  /** Removes the mark; keeps `answer` under the Idempotency-Key, or forgets the key. */
  private async settle(
    attempt: Attempt,
    answer: StoredAnswer | null,
    audit: (tx: LedgerTx) => Promise<void>,
  ): Promise<void> {
    await this.deps.ledger.transaction(async (tx) => {
      await tx.authentications.releaseInitiation(
        attempt.enrollment.enrollmentReference,
        attempt.owner,
      );
      if (attempt.idempotencyKey !== undefined) {
        if (answer) {
          await tx.idempotency.complete(
            attempt.caller,
            attempt.idempotencyKey,
            answer as unknown as Record<string, unknown>,
          );
        } else {
          await tx.idempotency.release(attempt.caller, attempt.idempotencyKey);
        }
      }
      await audit(tx);
    });
  }

  /**
   * The second transaction: under the enrollment's row lock, the earlier unfinished
   * authentications still within their 15 minutes become EXPIRED (superseded; Jumio expired
   * them when it created this one), the new one is recorded INITIATED, and any callback that
   * already arrived for it is applied. Older INITIATED ones are left to reconciliation:
   * Jumio's rule does not reach them, and their real result may be on its way.
   */
  private async record(
    attempt: Attempt,
    initiated: { authenticationReference: string; redirectUrl?: string },
  ): Promise<InitiateResult> {
    const now = this.deps.clock.now();
    const e = attempt.enrollment;
    const ref = initiated.authenticationReference;
    const expiresAt = new Date(now.getTime() + AUTHENTICATION_LIFETIME_MS);
    const result: InitiateResult = {
      authenticationReference: ref,
      ...(initiated.redirectUrl ? { redirectUrl: initiated.redirectUrl } : {}),
      state: 'INITIATED',
      expiresAt: expiresAt.toISOString(),
    };
    try {
      return await this.deps.ledger.transaction(async (tx) => {
        await tx.enrollments.get(e.enrollmentReference, { forUpdate: true });
        const stillOurs = await tx.authentications.releaseInitiation(
          e.enrollmentReference,
          attempt.owner,
        );
        if (!stillOurs) {
          this.deps.logger.warn(
            { authenticationReference: ref },
            'the in-flight mark expired during the Jumio call',
          );
        }
        const earlier = await tx.authentications.listLive(e.enrollmentReference, now);
        for (const a of earlier) {
          await finalize(
            tx,
            a,
            {
              state: 'EXPIRED',
              reason: 'superseded',
              source: 'superseded',
              details: { supersededBy: ref },
            },
            now,
            this.settings,
          );
        }
        await tx.authentications.insert(
          {
            authenticationReference: ref,
            enrollmentReference: e.enrollmentReference,
            userReference: attempt.input.userReference,
            state: 'INITIATED',
            purpose: attempt.input.purpose,
            requestedBy: attempt.caller,
            redirectUrl: initiated.redirectUrl ?? null,
            notifyUrl: attempt.input.notifyUrl ?? null,
            expiresAt,
            // Reconciled if no callback settles it in time (settings.reconcileGraceMs).
            nextAttemptAt: new Date(expiresAt.getTime() + this.settings.reconcileGraceMs),
          },
          now,
        );
        tx.audit.record({
          type: 'authentication.initiated',
          actor: attempt.caller,
          authenticationReference: ref,
          enrollmentReference: e.enrollmentReference,
          userReference: attempt.input.userReference,
          details: {
            purpose: attempt.input.purpose,
            decryptAudit: attempt.decryptAuditId,
            expiresAt: result.expiresAt,
            superseded: earlier.map((a) => a.authenticationReference),
          },
        });
        // A callback that overtook this commit was kept as an orphan: apply it now.
        for (const callback of await tx.authenticationCallbacks.listFor(ref)) {
          const row = await tx.authentications.get(ref, { forUpdate: true });
          await applyReportedResult(
            tx,
            row!,
            {
              result: callback.transactionResult as FinalAuthenticationState,
              enrollmentReference: callback.enrollmentReference,
              source: 'callback',
            },
            true,
            now,
            this.settings,
          );
        }
        if (attempt.idempotencyKey !== undefined) {
          const answer: StoredAnswer = { outcome: 'created', result };
          await tx.idempotency.complete(
            attempt.caller,
            attempt.idempotencyKey,
            answer as unknown as Record<string, unknown>,
          );
        }
        return result;
      });
    } catch (error) {
      // Jumio has the transaction but the ledger does not: its callback will be an orphan.
      this.deps.logger.error(
        { authenticationReference: ref, err: errorSummary(error) },
        'initiated at Jumio but could not record it',
      );
      throw ledgerFailure(error, 'initiated at Jumio but could not record it');
    }
  }
}

/** Replays the answer kept under an Idempotency-Key. */
function replay(answer: StoredAnswer): InitiateResult {
  if (answer.outcome === 'created') return answer.result;
  throw new AuthenticationError(answer.code, answer.message, answer.details);
}

/** Jumio's refusals as the caller sees them; null for a failure of the vault's own. */
function jumioFailure(error: unknown): AuthenticationError | null {
  if (error instanceof JumioUnauthorizedError) {
    return new AuthenticationError(
      'jumio_unauthorized',
      `Jumio refused the vault's credentials (HTTP ${error.status})`,
      { jumioStatus: error.status },
    );
  }
  if (error instanceof JumioRequestRejectedError) {
    const code = error.jumioCode ? ` ${error.jumioCode}` : '';
    return new AuthenticationError(
      'jumio_request_rejected',
      `Jumio rejected the initiate: HTTP ${error.status}${code}`,
      { jumioStatus: error.status, ...(error.jumioCode ? { jumioCode: error.jumioCode } : {}) },
    );
  }
  if (error instanceof JumioInvalidResponseError) {
    return new AuthenticationError(
      'jumio_invalid_response',
      'Jumio answered the initiate unusably',
    );
  }
  if (error instanceof JumioError && error.transient) {
    const retryAfterMs = (error as { retryAfterMs?: number | null }).retryAfterMs;
    return new AuthenticationError(
      'jumio_unavailable',
      `Jumio is unavailable (${error.code}); the initiate was not retried`,
      retryAfterMs ? { retryAfterSeconds: Math.ceil(retryAfterMs / 1000) } : {},
    );
  }
  return null;
}
