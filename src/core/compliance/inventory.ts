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
 */
export async function* inventoryBatches(
  deps: InventoryDeps,
  filter: InventoryFilter,
  batchSize = 2000,
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
