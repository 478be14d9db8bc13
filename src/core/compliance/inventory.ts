import { toEnrollmentView, type EnrollmentView } from '../enrollment/admin';
import type { InventoryFilter, InventoryItem, InventoryPosition, Ledger } from '../ports';

/** The read view of an enrollment plus what compliance needs: never bytes. */
export interface InventoryView extends EnrollmentView {
  retentionDueAt: string;
  lastInteractionAt: string | null;
  legalHold: boolean;
  erasedAt?: string;
}

export function toInventoryView(item: InventoryItem): InventoryView {
  const e = item.enrollment;
  return {
    ...toEnrollmentView(e),
    retentionDueAt: item.retentionDueAt.toISOString(),
    lastInteractionAt: item.lastInteractionAt?.toISOString() ?? null,
    legalHold: item.legalHold,
    ...(e.erasedAt ? { erasedAt: e.erasedAt.toISOString() } : {}),
  };
}

export interface InventoryDeps {
  ledger: Ledger;
  retentionDays: number;
}

/** One page in (createdAt, enrollmentReference) order, and where the next one starts. */
export async function inventoryPage(
  deps: InventoryDeps,
  filter: InventoryFilter,
  after: InventoryPosition | null,
  limit: number,
): Promise<{ items: InventoryItem[]; next: InventoryPosition | null }> {
  // One row more than asked tells whether there is a next page without another query.
  const rows = await deps.ledger.transaction((tx) =>
    tx.inventory.page(filter, after, limit + 1, deps.retentionDays),
  );
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit ? items[items.length - 1]!.position : null };
}

/**
 * Every matching enrollment, read in keyset batches (one short query per batch, none per
 * row), the next batch read while the consumer handles the current one (two in memory at
 * most). The consumer pulls: a reader that stops pulling (a client gone away) stops the
 * queries at the next batch.
 *
 * Batches are small on purpose: a batch's rows (the driver's, then the enrollments, views
 * and text made from them) stay alive while the next one is read and the previous one is
 * written out, long enough to survive V8's young-generation collections; with 2,000 rows,
 * most of every batch was promoted to the old generation and the heap grew to several
 * times what was live between major collections. 500 rows keep that garbage young, and the
 * extra queries cost nothing measurable (a million rows are 2,000 queries).
 */
export async function* inventoryBatches(
  deps: InventoryDeps,
  filter: InventoryFilter,
  batchSize = 500,
): AsyncGenerator<InventoryItem[]> {
  const read = (after: InventoryPosition | null): Promise<InventoryItem[]> => {
    const reading = deps.ledger.transaction((tx) =>
      tx.inventory.page(filter, after, batchSize, deps.retentionDays),
    );
    // A prefetch abandoned by a departed reader must not surface as an unhandled rejection.
    reading.catch(() => undefined);
    return reading;
  };
  let next: Promise<InventoryItem[]> | null = read(null);
  while (next) {
    const batch: InventoryItem[] = await next;
    next = batch.length === batchSize ? read(batch[batch.length - 1]!.position) : null;
    if (batch.length > 0) yield batch;
  }
}

/** `YYYY-MM` of the UTC month `offset` months after the one `date` falls in. */
export function utcMonth(date: Date, offset = 0): string {
  return monthStart(date, offset).toISOString().slice(0, 7);
}

/** The first instant of the UTC month `offset` months after the one `date` falls in. */
export function monthStart(date: Date, offset = 0): Date {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + offset, 1));
}

export interface FacemapMonth {
  month: string;
  /** Facemaps stored during the month. */
  stored: number;
  /** Facemaps destroyed (superseded, erased, purged) during the month. */
  destroyed: number;
  /** Facemaps held at the end of the month (or now, for the current month). */
  held: number;
}

/** The last `months` UTC months, the current one last: what was stored, destroyed, held. */
export async function facemapHistory(
  deps: InventoryDeps,
  now: Date,
  months: number,
): Promise<FacemapMonth[]> {
  const activity = await deps.ledger.transaction((tx) => tx.inventory.facemapsByMonth());
  const first = utcMonth(now, 1 - months);
  const inWindow = new Map(activity.filter((a) => a.month >= first).map((a) => [a.month, a]));
  // Held when the window opens: everything stored and not destroyed before it.
  let held = activity
    .filter((a) => a.month < first)
    .reduce((n, a) => n + a.stored - a.destroyed, 0);
  return Array.from({ length: months }, (_, i) => {
    const month = utcMonth(now, i + 1 - months);
    const { stored = 0, destroyed = 0 } = inWindow.get(month) ?? {};
    held += stored - destroyed;
    return { month, stored, destroyed, held };
  });
}

export interface RetentionMonth {
  month: string;
  /** Enrollments (not ERASED) whose retention deadline falls in the month. */
  due: number;
  /** Of those, the ones of users under a legal hold (not purged while it lasts). */
  onHold: number;
}

/**
 * Retention deadlines from `now` to the end of the UTC month `months - 1` after the current
 * one, per month (every month listed, zeros included). Deadlines already past are the
 * summary's `retentionPastDue`.
 */
export async function retentionSchedule(
  deps: InventoryDeps,
  now: Date,
  months: number,
): Promise<{ from: Date; to: Date; months: RetentionMonth[] }> {
  const to = monthStart(now, months);
  const rows = await deps.ledger.transaction((tx) =>
    tx.inventory.retentionByMonth(now, to, deps.retentionDays),
  );
  const byMonth = new Map(rows.map((r) => [r.month, r]));
  return {
    from: now,
    to,
    months: Array.from({ length: months }, (_, i) => {
      const month = utcMonth(now, i);
      const { due = 0, onHold = 0 } = byMonth.get(month) ?? {};
      return { month, due, onHold };
    }),
  };
}
