import { stringify } from 'csv-stringify/sync';
import type { InventoryFilter } from '../ports';
import {
  type InventoryDeps,
  inventoryBatches,
  type InventoryView,
  toInventoryView,
} from './inventory';

export type ExportFormat = 'csv' | 'ndjson';

/** Export columns: metadata only, never bytes. */
export const CSV_COLUMNS = [
  'enrollmentReference',
  'userReference',
  'state',
  'reason',
  'createdAt',
  'storedAt',
  'activatedAt',
  'jumioDeletedAt',
  'lastInteractionAt',
  'retentionDueAt',
  'legalHold',
  'erasedAt',
  'facemapBytes',
  'keyId',
  'ciphertextSha256',
] as const satisfies ReadonlyArray<keyof InventoryView>;

/** RFC 4180 quoting; cells a spreadsheet would run as a formula (= + - @ tab CR) are defused. */
function csvRows(rows: string[][]): string {
  return stringify(rows, { escape_formulas: true, record_delimiter: '\r\n' });
}

/**
 * The inventory as text chunks, one per keyset batch (HTTP export and `npm run inventory`).
 * `progress` learns how many rows were produced, and whether the end was reached.
 */
export async function* exportChunks(
  deps: InventoryDeps,
  filter: InventoryFilter,
  format: ExportFormat,
  progress: { rows: number; complete: boolean } = { rows: 0, complete: false },
): AsyncGenerator<string> {
  if (format === 'csv') yield csvRows([[...CSV_COLUMNS]]);
  for await (const batch of inventoryBatches(deps, filter)) {
    const views = batch.map(toInventoryView);
    progress.rows += views.length;
    yield format === 'csv'
      ? csvRows(views.map((v) => CSV_COLUMNS.map((c) => (v[c] == null ? '' : String(v[c])))))
      : views.map((v) => `${JSON.stringify(v)}\n`).join('');
  }
  progress.complete = true;
}
