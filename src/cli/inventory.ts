import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { withLedger } from '../adapters/ledger/open';
import { loadConfig } from '../config';
import { type ExportFormat, exportChunks } from '../core/compliance/export';
import { type InventoryFilter, systemClock } from '../core/ports';
import type { Io } from './io';
import { startProgress } from './progress';

/**
 * `vault inventory` on the configured ledger. It loads the ledger alone (no blob store, no
 * AWS SDK, no HTTP stack): an export of millions of rows runs in a process whose memory is
 * the ledger driver and one page of rows. With the embedded ledger it opens the vault's
 * PGlite directory, which belongs to one process: stop the vault first, or use the HTTP
 * route.
 */

/**
 * `vault inventory`: the same export as `GET /v1/inventory/export`, streamed to `out` with
 * constant memory; progress (rows, rate) on stderr.
 */
export async function inventory(
  options: { format: ExportFormat; filter: InventoryFilter },
  io: Io,
  out: Writable = process.stdout,
  progressStream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): Promise<number> {
  const config = loadConfig(io.env);
  const { retentionDays } = config.compliance;
  const rows = await withLedger(config, async (ledger) => {
    const summary = await ledger.transaction((tx) =>
      tx.inventory.summary(systemClock.now(), retentionDays),
    );
    const all = Object.values(summary.byState).reduce((a, b) => a + (b ?? 0), 0);
    const unfiltered = Object.keys(options.filter).length === 0;
    const progress = startProgress({
      label: 'exported',
      total: unfiltered ? all : 0,
      stream: progressStream,
    });
    const counted = { rows: 0, complete: false };
    let reported = 0;
    try {
      await pipeline(
        Readable.from(
          exportChunks({ ledger, retentionDays }, options.filter, options.format, counted),
          {
            highWaterMark: 1,
          },
        ),
        new Transform({
          transform(chunk, _encoding, done) {
            progress.increment(counted.rows - reported);
            reported = counted.rows;
            done(null, chunk);
          },
        }),
        out,
        { end: false },
      );
    } finally {
      progress.stop();
    }
    return counted.rows;
  });
  io.err(`${rows} enrollments exported`);
  return 0;
}
