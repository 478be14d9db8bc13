import type { BlobStores } from '../blobs';
import type { AuditEventInput, Clock, EnrollmentRecord, Ledger, Logger } from '../ports';
import type { PeriodicTask, TaskSlice } from '../schedules';
import { HOLDING_STATES } from './pipeline';

const FACEMAPS = 'facemaps/';
const KEY = /^facemaps\/([^/]+)\/[^/]+$/;

export interface OrphanSweepOptions {
  intervalMs: number;
  /** Blobs younger than this are left alone: a store attempt may still be committing. */
  graceMs: number;
  /** Listing pages (of up to 1000 keys) one slice examines. */
  pagesPerSlice?: number;
}

/** True when the ledger holds `key` (in `location`) as this enrollment's facemap. */
function holds(e: EnrollmentRecord, key: string, location: string): boolean {
  if (e.blobKey !== key || (e.blobStore ?? location) !== location) return false;
  if (HOLDING_STATES.has(e.state)) return true;
  // The pipeline itself destroys a superseded blob (and audits it).
  if (e.state === 'SUPERSEDED') return !e.blobDestroyedAt;
  // A FAILED row recorded before FAILED held no blob: Jumio's copy may be gone, keep it.
  return e.state === 'FAILED' && e.storedAt !== null;
}

/**
 * Invariant 10's housekeeping: a facemap the ledger does not hold must not exist. Walks the
 * current store's `facemaps/` in slices and destroys every blob no enrollment holds (a
 * crashed store attempt, a FAILED or REJECTED enrollment's leftovers, a deleted row),
 * once it is older than the grace period, auditing each one.
 */
export class OrphanSweep implements PeriodicTask {
  readonly name = 'orphan-sweep';
  readonly intervalMs: number;

  constructor(
    private readonly deps: { ledger: Ledger; blobs: BlobStores; clock: Clock; logger: Logger },
    private readonly options: OrphanSweepOptions,
  ) {
    this.intervalMs = options.intervalMs;
  }

  async runSlice(
    progress: Record<string, unknown>,
    attempts: number,
    now: Date,
  ): Promise<TaskSlice> {
    const store = this.deps.blobs.current;
    // A listing cursor that keeps failing (expired, or from another store) restarts the pass.
    let cursor = typeof progress.cursor === 'string' && attempts < 3 ? progress.cursor : undefined;
    const audits: AuditEventInput[] = [];
    for (let page = 0; page < (this.options.pagesPerSlice ?? 5); page += 1) {
      const listed = await store.list(FACEMAPS, { cursor, limit: 1000 });
      const refOf = (key: string) => KEY.exec(key)?.[1];
      const refs = [...new Set(listed.keys.map(refOf).filter((r): r is string => !!r))];
      const rows = await this.deps.ledger.transaction((tx) => tx.enrollments.getMany(refs));
      const byRef = new Map(rows.map((e) => [e.enrollmentReference, e]));
      for (const key of listed.keys) {
        const ref = refOf(key);
        const e = ref === undefined ? undefined : byRef.get(ref);
        if (e && holds(e, key, store.location)) continue;
        // A step of this enrollment is running: its blob may be about to be recorded.
        if (e?.leaseUntil && e.leaseUntil > now) continue;
        const stat = await store.stat(key);
        if (!stat || now.getTime() - stat.lastModified.getTime() < this.options.graceMs) continue;
        await store.delete(key);
        audits.push({
          type: 'facemap.orphan_removed',
          actor: 'system',
          enrollmentReference: e?.enrollmentReference ?? null,
          userReference: e?.userReference ?? null,
          details: {
            blobKey: key,
            blobStore: store.location,
            bytes: stat.size,
            enrollmentState: e?.state ?? null,
          },
        });
      }
      cursor = listed.nextCursor;
      if (!cursor) break;
    }
    if (audits.length > 0) {
      this.deps.logger.warn({ removed: audits.length }, 'orphan sweep removed unheld blobs');
    }
    return {
      progress: cursor ? { cursor } : {},
      done: !cursor,
      apply: async (tx) => {
        for (const audit of audits) tx.audit.record(audit);
      },
    };
  }
}
