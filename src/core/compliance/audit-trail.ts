import type { BlobStores } from '../blobs';
import type { AuditSigner, BlobStore, Clock, Ledger, Logger } from '../ports';
import type { PeriodicTask, TaskSlice } from '../schedules';
import { canonicalJson, entryHash, GENESIS_HASH } from './chain';

/**
 * Digests outside the database, as CloudTrail does: the chain head is signed with a key the
 * database does not hold and written to the blob store, on a schedule and on demand, also
 * when nothing happened. Each digest names the previous one's signature, so a digest cannot
 * be dropped or replaced unnoticed, and whoever recomputes the chain in the database cannot
 * make it agree with the digests already written.
 */

export const DIGEST_PREFIX = 'audit-digests/';

export interface AuditDigest {
  version: 1;
  /** 1, 2, 3 ...: a missing digest is a gap. */
  number: number;
  /** The entries this digest covers; an empty period has toSequence = fromSequence - 1. */
  fromSequence: number;
  toSequence: number;
  /** The hash of entry `toSequence` (the genesis hash before any entry). */
  chainHead: string;
  previousDigestSignature: string | null;
  createdAt: string;
  keyId: string;
}

export interface SignedDigest {
  digest: AuditDigest;
  /** Signature over canonicalJson(digest), base64. */
  signature: string;
}

export interface AuditTrailDeps {
  ledger: Ledger;
  blobs: BlobStores;
  signer: AuditSigner;
  clock: Clock;
  logger: Logger;
}

const bytesOf = (digest: AuditDigest) => new TextEncoder().encode(canonicalJson(digest));

export function digestKey(number: number): string {
  return `${DIGEST_PREFIX}${String(number).padStart(12, '0')}.json`;
}

/**
 * Writes the next digest. One writer at a time (the digest state row is locked); the blob
 * is written before the state commits, so a failed commit leaves a digest that the next
 * one overwrites under the same number.
 */
export async function writeDigest(deps: AuditTrailDeps): Promise<SignedDigest> {
  const store = deps.blobs.current;
  const signed = await deps.ledger.transaction(async (tx) => {
    const state = await tx.auditDigests.lock();
    const head = await tx.audit.head();
    const createdAt = deps.clock.now();
    const digest: AuditDigest = {
      version: 1,
      number: state.digests + 1,
      fromSequence: state.toSequence + 1,
      toSequence: head.seq,
      chainHead: head.hash,
      previousDigestSignature: state.signature,
      createdAt: createdAt.toISOString(),
      keyId: deps.signer.keyId,
    };
    const signature = await deps.signer.sign(bytesOf(digest));
    const blobKey = digestKey(digest.number);
    await store.put(blobKey, new TextEncoder().encode(JSON.stringify({ digest, signature })));
    await tx.auditDigests.save({
      digests: digest.number,
      toSequence: digest.toSequence,
      signature,
      blobKey,
      createdAt,
    });
    return { digest, signature };
  });
  deps.logger.info(
    {
      number: signed.digest.number,
      fromSequence: signed.digest.fromSequence,
      toSequence: signed.digest.toSequence,
    },
    'audit digest written',
  );
  return signed;
}

/** The scheduled digest (`AUDIT_DIGEST_INTERVAL_MS`) on the `schedules` queue. */
export class AuditDigestTask implements PeriodicTask {
  readonly name = 'audit-digest';

  constructor(
    private readonly deps: AuditTrailDeps,
    readonly intervalMs: number,
  ) {}

  async runSlice(): Promise<TaskSlice> {
    await writeDigest(this.deps);
    return { progress: {}, done: true };
  }
}

export type BreakReason =
  | 'edited'
  | 'deleted'
  | 'chain_broken'
  | 'chain_rewritten'
  | 'digest_missing'
  | 'digest_signature_invalid'
  | 'digest_unreadable';

export type VerifyReport =
  | { ok: true; checkedThrough: number; digestsChecked: number }
  | {
      ok: false;
      /** The first sequence that cannot be trusted. */
      brokenAt: number;
      reason: BreakReason;
      message: string;
      /** The last sequence verified before it. */
      checkedThrough: number;
      digestsChecked: number;
    };

interface Break {
  brokenAt: number;
  reason: BreakReason;
  message: string;
}

/** Entries read per query: verification costs one round trip per batch, never per entry. */
const VERIFY_BATCH = 5000;

/** Digest reads in flight at once: a year of hourly digests is 8760 objects. */
const DIGEST_READS = 16;

async function* digestsOf(store: BlobStore): AsyncGenerator<{ key: string; bytes: Uint8Array }> {
  let cursor: string | undefined;
  do {
    const page = await store.list(DIGEST_PREFIX, { cursor, limit: 1000 });
    for (let i = 0; i < page.keys.length; i += DIGEST_READS) {
      const keys = page.keys.slice(i, i + DIGEST_READS);
      const bodies = await Promise.all(keys.map((key) => store.get(key)));
      for (const [j, key] of keys.entries()) yield { key, bytes: bodies[j]! };
    }
    cursor = page.nextCursor;
  } while (cursor);
}

/** Checks every digest's signature and link; the chain heads they vouch for, by sequence. */
async function checkDigests(deps: AuditTrailDeps): Promise<{
  heads: Map<number, { hash: string; number: number }>;
  count: number;
  problem?: Break;
}> {
  const heads = new Map<number, { hash: string; number: number }>();
  let previous: SignedDigest | null = null;
  let count = 0;
  for await (const { key, bytes } of digestsOf(deps.blobs.current)) {
    const expectedFrom = previous ? previous.digest.toSequence + 1 : 1;
    let signed: SignedDigest;
    try {
      signed = JSON.parse(new TextDecoder().decode(bytes)) as SignedDigest;
      if (typeof signed?.signature !== 'string' || typeof signed.digest?.number !== 'number') {
        throw new Error('shape');
      }
    } catch {
      return {
        heads,
        count,
        problem: {
          brokenAt: expectedFrom,
          reason: 'digest_unreadable',
          message: `digest ${key} cannot be read`,
        },
      };
    }
    const { digest } = signed;
    const expectedNumber = (previous?.digest.number ?? 0) + 1;
    if (digest.number !== expectedNumber || key !== digestKey(digest.number)) {
      return {
        heads,
        count,
        problem: {
          brokenAt: expectedFrom,
          reason: 'digest_missing',
          message: `digest ${expectedNumber} is missing (found ${key})`,
        },
      };
    }
    if (!(await deps.signer.verify(bytesOf(digest), signed.signature))) {
      return {
        heads,
        count,
        problem: {
          brokenAt: Math.min(expectedFrom, digest.fromSequence),
          reason: 'digest_signature_invalid',
          message: `digest ${digest.number} has a bad signature`,
        },
      };
    }
    if (
      digest.previousDigestSignature !== (previous?.signature ?? null) ||
      digest.fromSequence !== expectedFrom
    ) {
      return {
        heads,
        count,
        problem: {
          brokenAt: expectedFrom,
          reason: 'digest_missing',
          message: `digest ${digest.number} does not follow digest ${expectedNumber - 1}`,
        },
      };
    }
    if (digest.toSequence >= digest.fromSequence) {
      heads.set(digest.toSequence, { hash: digest.chainHead, number: digest.number });
    }
    previous = signed;
    count += 1;
  }
  // Entries the last digest vouched for must still be there (checked against the chain).
  if (previous && previous.digest.toSequence > 0) {
    heads.set(previous.digest.toSequence, {
      hash: previous.digest.chainHead,
      number: previous.digest.number,
    });
  }
  return { heads, count };
}

/**
 * Recomputes the chain from the first entry and checks it against every digest. Reports
 * the first sequence that cannot be trusted and why: an edited entry (its hash no longer
 * matches its fields), a deleted one (a gap), a broken link, a chain recomputed after an
 * edit (it disagrees with a signed digest), a digest missing or with a bad signature.
 */
export async function verifyAuditTrail(deps: AuditTrailDeps): Promise<VerifyReport> {
  const digests = await checkDigests(deps);
  const stopAt = digests.problem?.brokenAt ?? Infinity;
  let expected = 1;
  let prevHash = GENESIS_HASH;
  let problem: Break | undefined;
  const lastVouched = Math.max(0, ...digests.heads.keys());
  outer: for (;;) {
    const batch = await deps.ledger.transaction((tx) => tx.audit.chain(expected - 1, VERIFY_BATCH));
    for (const e of batch) {
      if (e.seq >= stopAt) break outer;
      if (e.seq !== expected) {
        problem = {
          brokenAt: expected,
          reason: 'deleted',
          message: `entry ${expected} is missing (deleted)`,
        };
        break outer;
      }
      if (entryHash(e) !== e.hash) {
        problem = {
          brokenAt: e.seq,
          reason: 'edited',
          message: `entry ${e.seq} does not match its hash (edited)`,
        };
        break outer;
      }
      if (e.prevHash !== prevHash) {
        problem = {
          brokenAt: e.seq,
          reason: 'chain_broken',
          message: `entry ${e.seq} does not link to entry ${e.seq - 1}`,
        };
        break outer;
      }
      const vouched = digests.heads.get(e.seq);
      if (vouched && vouched.hash !== e.hash) {
        problem = {
          brokenAt: e.seq,
          reason: 'chain_rewritten',
          message: `entry ${e.seq} differs from signed digest ${vouched.number}: the chain was recomputed`,
        };
        break outer;
      }
      prevHash = e.hash;
      expected += 1;
    }
    if (batch.length < VERIFY_BATCH) break;
  }
  if (!problem && expected <= lastVouched && expected < stopAt) {
    problem = {
      brokenAt: expected,
      reason: 'deleted',
      message: `entries from ${expected} on are missing, though a signed digest vouched for them through ${lastVouched}`,
    };
  }
  const first = [problem, digests.problem]
    .filter((p): p is Break => p !== undefined)
    .sort((a, b) => a.brokenAt - b.brokenAt)[0];
  if (!first) return { ok: true, checkedThrough: expected - 1, digestsChecked: digests.count };
  return {
    ok: false,
    ...first,
    checkedThrough: Math.min(expected, first.brokenAt) - 1,
    digestsChecked: digests.count,
  };
}

/** The audit entry type of a verification: who checked the trail, when, and what it found. */
export const VERIFIED_EVENT = 'audit.verified';

/**
 * Verifies the trail and records the result in it (fails closed: no entry, no answer), so
 * that "when was the trail last verified, by whom, with what result" is itself on record.
 */
export async function verifyAndRecord(deps: AuditTrailDeps, actor: string): Promise<VerifyReport> {
  const report = await verifyAuditTrail(deps);
  await deps.ledger.transaction((tx) =>
    tx.audit.append({ type: VERIFIED_EVENT, actor, details: { ...report } }),
  );
  return report;
}

export interface AuditStatus {
  head: { seq: number };
  lastDigest: { number: number; toSequence: number; createdAt: Date } | null;
  lastVerification: {
    seq: number;
    at: Date;
    actor: string;
    report: VerifyReport;
  } | null;
}

/** The chain head, the last signed digest and the last recorded verification. */
export async function auditStatus(deps: Pick<AuditTrailDeps, 'ledger'>): Promise<AuditStatus> {
  return deps.ledger.transaction(async (tx) => {
    const head = await tx.audit.head();
    const digest = await tx.auditDigests.current();
    const verified = await tx.audit.latest(VERIFIED_EVENT);
    return {
      head: { seq: head.seq },
      lastDigest:
        digest.digests > 0 && digest.createdAt
          ? { number: digest.digests, toSequence: digest.toSequence, createdAt: digest.createdAt }
          : null,
      lastVerification: verified
        ? {
            seq: verified.seq,
            at: verified.at,
            actor: verified.actor,
            report: verified.details as unknown as VerifyReport,
          }
        : null,
    };
  });
}
