import { createHash, randomBytes } from 'node:crypto';
import type { BlobStores } from '../blobs';
import { facemapContext, type UserReferenceHasher } from '../enrollment/context';
import { facemapPrefix, HOLDING_STATES } from '../enrollment/pipeline';
import { DependencyError, VaultError } from '../errors';
import type {
  Clock,
  EncryptionContext,
  EnrollmentRecord,
  Envelope,
  Ledger,
  Logger,
  VaultKeyRecord,
} from '../ports';
import { errorSummary } from '../work';
import { keyReport, type KeyReport, vaultKeysToRewrap } from './report';
import { vaultKeyContext } from './vault-keys';

/**
 * Key rotation's second half (`vault rewrap`): moves every stored facemap, and every wrapped
 * vault key, from the previous keys to the current one, so that the previous keys can be
 * retired.
 *
 * A facemap is leased as the workers lease rows (the same lease columns, FOR UPDATE SKIP
 * LOCKED; a row another worker holds is left alone), decrypted, encrypted under the current
 * key with the same encryption context, written as a NEW object, read back, compared and
 * decrypted again; then, in one transaction fenced by the lease, the new object, key id and
 * digest are recorded and `facemap.rewrapped` audited; only then is the old object destroyed
 * (every version, through the store its row named). A crash before the commit leaves the
 * row on its old, readable object (and an unrecorded new one); a crash after it leaves the
 * old object unrecorded: either stray is removed by the orphan sweep. So a run can stop at
 * any point and the next one picks up what is left: whatever is still under a previous key.
 *
 * Superseded facemaps are not rewrapped: they are never read again and the pipeline
 * destroys them next (rewrapping would race that destruction for nothing). Facemaps under
 * a key that is not configured cannot be decrypted: they are counted, not attempted.
 */

export interface RewrapDeps {
  ledger: Ledger;
  blobs: BlobStores;
  envelope: Envelope;
  clock: Clock;
  logger: Logger;
  hashUserReference: UserReferenceHasher;
}

export type FacemapOutcome =
  /** Under the current key now, its old object destroyed (or left to the orphan sweep). */
  | 'rewrapped'
  /** Could not be rewrapped (unreadable blob, digest mismatch...): left as it was. */
  | 'failed'
  /** An authentication is reading it: left for a later pass. */
  | 'busy'
  /** Changed while it was being rewrapped (erased, superseded) or its lease was taken. */
  | 'skipped';

export interface RewrapOptions {
  /** The audit actor (`cli:<os user>`). */
  actor: string;
  /** The lease owner; a fresh one by default. */
  owner?: string;
  /** How long a facemap stays reserved: longer than one facemap's rewrap can take. */
  leaseMs?: number;
  /** Facemaps rewrapped at once. */
  concurrency?: number;
  /** At most this many facemaps (rewrapped or failed) in this run. */
  limit?: number;
  /** At most this many facemaps a second (to spare KMS and the blob store); unbounded when unset. */
  maxPerSecond?: number;
  /**
   * How long to keep waiting for facemaps other workers hold (a pipeline step, an
   * authentication, a crashed run's lease): past it, the run ends and reports them pending.
   */
  waitMs?: number;
  /** Between two looks at facemaps held by others. */
  pollMs?: number;
  /** Aborted (Ctrl-C): no new facemap is started; those in flight finish. */
  signal?: AbortSignal;
  /** Each facemap's outcome, as it happens (progress). */
  onFacemap?: (outcome: FacemapOutcome) => void;
  /** Test hooks (crash injection): after the new object is verified, after the commit. */
  hooks?: {
    beforeCommit?: (enrollmentReference: string) => Promise<void> | void;
    afterCommit?: (enrollmentReference: string) => Promise<void> | void;
  };
  sleep?: (ms: number) => Promise<void>;
}

export interface RewrapPlan {
  report: KeyReport;
  /** Facemaps under previous keys: what a run would rewrap (at most `limit`). */
  facemaps: number;
  /** Names of the wrapped vault keys not under the current key. */
  vaultKeys: string[];
}

export interface RewrapResult {
  rewrapped: number;
  failed: Array<{ enrollmentReference: string; error: string }>;
  vaultKeys: { rewrapped: string[]; failed: Array<{ name: string; error: string }> };
  /** Still under a previous key when the run ended (held by another worker): run again. */
  pending: number;
  /** Under keys this vault does not have: unreadable, not attempted. */
  unreadable: number;
  /** Old objects whose deletion failed after the commit: the orphan sweep removes them. */
  oldObjectsLeft: number;
  interrupted: boolean;
}

/** The run stops starting facemaps after this many failures: something is broken. */
const MAX_FAILURES = 100;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.byteLength === b.byteLength && Buffer.from(a).equals(Buffer.from(b));

/** A facemap that is left as it is, for a reason that is not a dependency failure. */
class RewrapRefused extends VaultError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** Moves what the previous keys wrap to the current key; see the module comment. */
export class KeyRewrap {
  private readonly owner: string;
  private readonly leaseMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private oldObjectsLeft = 0;

  constructor(
    private readonly deps: RewrapDeps,
    private readonly options: RewrapOptions,
  ) {
    this.owner = options.owner ?? `rewrap-${randomBytes(6).toString('hex')}`;
    this.leaseMs = options.leaseMs ?? 120_000;
    this.sleep =
      options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()));
  }

  /** What a run would do (`--dry-run`): counts per key, and the vault keys to rewrap. */
  async plan(): Promise<RewrapPlan> {
    const report = await keyReport(this.deps);
    const stored = await this.deps.ledger.transaction((tx) => tx.vaultKeys.list());
    return {
      report,
      facemaps: Math.min(report.facemaps.toRewrap, this.options.limit ?? Infinity),
      vaultKeys: vaultKeysToRewrap(stored, this.deps.envelope.keyId).map((k) => k.name),
    };
  }

  async run(): Promise<RewrapResult> {
    const { signal } = this.options;
    // The vault keys first: a handful, and the previous key cannot be retired before them.
    const vaultKeys = await this.rewrapVaultKeys();
    const limit = this.options.limit ?? Infinity;
    const failed = new Map<string, string>();
    let started = 0;
    let rewrapped = 0;
    let waited = 0;
    const paced = this.pacer();
    for (;;) {
      const deferred = new Set<string>();
      // Ours in flight: a busy one's lease is released before it joins `deferred`.
      const active = new Set<string>();
      const worker = async () => {
        while (!signal?.aborted && started < limit && failed.size < MAX_FAILURES) {
          started += 1;
          await paced();
          const e = await this.lease([...failed.keys(), ...deferred, ...active]);
          if (!e) {
            started -= 1;
            return;
          }
          active.add(e.enrollmentReference);
          const { outcome, error } = await this.rewrapOne(e);
          active.delete(e.enrollmentReference);
          this.options.onFacemap?.(outcome);
          if (outcome === 'rewrapped') rewrapped += 1;
          else if (outcome === 'failed') failed.set(e.enrollmentReference, error!);
          else {
            started -= 1;
            deferred.add(e.enrollmentReference);
          }
        }
      };
      await Promise.all(Array.from({ length: this.options.concurrency ?? 4 }, worker));
      if (signal?.aborted || started >= limit || failed.size >= MAX_FAILURES) break;
      const left = (await this.remaining()) - failed.size;
      if (left <= 0 || waited >= (this.options.waitMs ?? 300_000)) break;
      // What is left is held by other workers (or busy): look again once they may be done.
      const pollMs = this.options.pollMs ?? 1000;
      this.deps.logger.info({ left }, 'waiting for facemaps other workers hold');
      await this.sleep(pollMs);
      waited += pollMs;
    }
    const report = await keyReport(this.deps);
    return {
      rewrapped,
      failed: [...failed].map(([enrollmentReference, error]) => ({ enrollmentReference, error })),
      vaultKeys,
      pending: Math.max(0, report.facemaps.toRewrap - failed.size),
      unreadable: report.facemaps.unreadable,
      oldObjectsLeft: this.oldObjectsLeft,
      interrupted: signal?.aborted === true,
    };
  }

  /** Facemaps still under a previous key. */
  private async remaining(): Promise<number> {
    return (await keyReport(this.deps)).facemaps.toRewrap;
  }

  /** Waits for the next start allowed by `maxPerSecond` (none when unset). */
  private pacer(): () => Promise<void> {
    const rate = this.options.maxPerSecond;
    if (!rate) return async () => undefined;
    const t0 = Date.now();
    let n = 0;
    return async () => {
      const at = t0 + (n++ * 1000) / rate;
      const wait = at - Date.now();
      if (wait > 0) await this.sleep(wait);
    };
  }

  private lease(skip: string[]): Promise<EnrollmentRecord | null> {
    const { envelope, clock } = this.deps;
    return this.deps.ledger.transaction((tx) =>
      tx.enrollments.leaseUnderKeys(
        envelope.previousKeyIds,
        this.owner,
        clock.now(),
        this.leaseMs,
        skip,
      ),
    );
  }

  private async rewrapOne(
    e: EnrollmentRecord,
  ): Promise<{ outcome: FacemapOutcome; error?: string }> {
    const ref = e.enrollmentReference;
    const store = this.deps.blobs.current;
    let written: Awaited<ReturnType<KeyRewrap['writeNew']>>;
    try {
      written = await this.writeNew(e);
    } catch (error) {
      const summary = errorSummary(error);
      this.deps.logger.warn({ enrollmentReference: ref, err: summary }, 'facemap not rewrapped');
      await this.deps.ledger
        .transaction((tx) => tx.enrollments.releaseLease(ref, this.owner))
        .catch(() => undefined); // else the lease runs out
      return { outcome: 'failed', error: summary };
    }
    // Outside any try: a hook that throws stops the run as a crash would.
    await this.options.hooks?.beforeCommit?.(ref);
    const outcome = await this.commit(e, written);
    if (outcome !== 'rewrapped') {
      await store.delete(written.blobKey).catch(() => undefined); // else the orphan sweep
      return { outcome };
    }
    await this.options.hooks?.afterCommit?.(ref);
    try {
      await written.oldStore.delete(e.blobKey!);
    } catch (error) {
      this.oldObjectsLeft += 1;
      this.deps.logger.warn(
        { enrollmentReference: ref, blobKey: e.blobKey, err: errorSummary(error) },
        'rewrapped, but the old object could not be deleted: the orphan sweep removes it',
      );
    }
    return { outcome };
  }

  /**
   * The facemap under the current key as a new object, written, read back, compared and
   * decrypted again. On failure, the new object (if any) is deleted.
   */
  private async writeNew(e: EnrollmentRecord) {
    if (!e.blobKey || !e.userReference) {
      throw new RewrapRefused('no_blob_recorded', 'no blob recorded for this facemap');
    }
    const ref = e.enrollmentReference;
    const oldStore = this.deps.blobs.holding(e.blobStore);
    const ciphertext = await oldStore.get(e.blobKey);
    if (e.ciphertextSha256 && sha256(ciphertext) !== e.ciphertextSha256) {
      throw new RewrapRefused(
        'ciphertext_digest_mismatch',
        'the stored ciphertext differs from its recorded digest: left as it is',
      );
    }
    const context = facemapContext(ref, e.userReference, this.deps.hashUserReference);
    const fresh = await this.reencrypt(ciphertext, context);
    const store = this.deps.blobs.current;
    const blobKey = `${facemapPrefix(ref)}${randomBytes(8).toString('hex')}.bin`;
    try {
      await store.put(blobKey, fresh.ciphertext);
      const readBack = await store.get(blobKey);
      const ciphertextSha256 = sha256(fresh.ciphertext);
      if (sha256(readBack) !== ciphertextSha256) {
        throw new DependencyError('blob store', 'read-back differs from what was written');
      }
      await this.checkDecrypts(readBack, context, fresh.plaintextSha256);
      return { blobKey, blobStore: store.location, ciphertextSha256, keyId: fresh.keyId, oldStore };
    } catch (error) {
      await store.delete(blobKey).catch(() => undefined); // else the orphan sweep
      throw error;
    }
  }

  /** Decrypts, encrypts under the current key with the same context; zeroes the plaintext. */
  private async reencrypt(
    ciphertext: Uint8Array,
    context: EncryptionContext,
  ): Promise<{ ciphertext: Uint8Array; keyId: string; plaintextSha256: string }> {
    const plaintext = await this.deps.envelope.decrypt(ciphertext, context);
    try {
      const out = await this.deps.envelope.encrypt(plaintext, context);
      return { ...out, plaintextSha256: sha256(plaintext) };
    } finally {
      plaintext.fill(0);
    }
  }

  private async checkDecrypts(
    ciphertext: Uint8Array,
    context: EncryptionContext,
    plaintextSha256: string,
  ): Promise<void> {
    const back = await this.deps.envelope.decrypt(ciphertext, context);
    const same = sha256(back) === plaintextSha256;
    back.fill(0);
    if (!same) throw new DependencyError('envelope', 'the new ciphertext decrypts to other bytes');
  }

  /**
   * Records the new object in one transaction fenced by our lease (row lock first, the
   * audit entry last), unless the row changed meanwhile or an authentication holds its
   * initiation mark: an initiate reads the blob after its own commit, so the object it read
   * must outlive it.
   */
  private commit(
    e: EnrollmentRecord,
    written: { blobKey: string; blobStore: string; ciphertextSha256: string; keyId: string },
  ): Promise<FacemapOutcome> {
    const ref = e.enrollmentReference;
    const { blobKey, blobStore, ciphertextSha256, keyId } = written;
    const next = { blobKey, blobStore, ciphertextSha256, keyId };
    return this.deps.ledger.transaction(async (tx) => {
      if (!(await tx.queues.holds('enrollments', ref, this.owner))) return 'skipped';
      const now = this.deps.clock.now();
      const row = await tx.enrollments.get(ref);
      const unchanged =
        row !== null &&
        HOLDING_STATES.has(row.state) &&
        row.blobKey === e.blobKey &&
        row.blobStore === e.blobStore &&
        row.keyId === e.keyId;
      if (!unchanged || (await tx.authentications.initiationLive(ref, now))) {
        await tx.enrollments.releaseLease(ref, this.owner);
        return unchanged ? 'busy' : 'skipped';
      }
      await tx.enrollments.update(
        ref,
        { ...next, leaseOwner: null, leaseUntil: null },
        now,
        this.owner,
      );
      await tx.audit.append({
        type: 'facemap.rewrapped',
        actor: this.options.actor,
        enrollmentReference: ref,
        userReference: e.userReference,
        details: {
          oldKeyId: e.keyId,
          newKeyId: next.keyId,
          oldBlobKey: e.blobKey,
          newBlobKey: next.blobKey,
          oldBlobStore: e.blobStore,
          blobStore: next.blobStore,
          ciphertextSha256: next.ciphertextSha256,
        },
      });
      return 'rewrapped';
    });
  }

  /**
   * Every wrapped vault key not under the current key (probes excepted: each stays under
   * its own key), replaced in place: every replica decrypts the old and the new ciphertext
   * alike while the previous key is configured. Audited `vault_key.rewrapped`.
   */
  private async rewrapVaultKeys(): Promise<RewrapResult['vaultKeys']> {
    const { ledger, envelope } = this.deps;
    const stored = await ledger.transaction((tx) => tx.vaultKeys.list());
    const result: RewrapResult['vaultKeys'] = { rewrapped: [], failed: [] };
    for (const key of vaultKeysToRewrap(stored, envelope.keyId)) {
      try {
        if (await this.rewrapVaultKey(key)) result.rewrapped.push(key.name);
      } catch (error) {
        const summary = errorSummary(error);
        this.deps.logger.error({ name: key.name, err: summary }, 'vault key not rewrapped');
        result.failed.push({ name: key.name, error: summary });
      }
    }
    return result;
  }

  private async rewrapVaultKey(key: VaultKeyRecord): Promise<boolean> {
    const context = vaultKeyContext(key.name);
    const fresh = await this.reencrypt(key.ciphertext, context);
    await this.checkDecrypts(fresh.ciphertext, context, fresh.plaintextSha256);
    return this.deps.ledger.transaction(async (tx) => {
      const row = await tx.vaultKeys.get(key.name, { forUpdate: true });
      // Another run rewrapped it meanwhile: theirs stands.
      if (!row || !sameBytes(row.ciphertext, key.ciphertext)) return false;
      await tx.vaultKeys.replace(key.name, fresh.ciphertext, fresh.keyId, this.deps.clock.now());
      await tx.audit.append({
        type: 'vault_key.rewrapped',
        actor: this.options.actor,
        details: { name: key.name, oldKeyId: key.keyId, newKeyId: fresh.keyId },
      });
      return true;
    });
  }
}
