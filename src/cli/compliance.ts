import { userInfo } from 'node:os';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { runMigrations } from '../adapters/ledger/migrations';
import { SqlLedger } from '../adapters/ledger/sql-ledger';
import { ConfigError, loadConfig, type VaultConfig } from '../config';
import { buildAuditSigner, buildBlobStore, buildContainer, openDatabase } from '../container';
import { verifyAuditTrail, type VerifyReport } from '../core/compliance/audit-trail';
import { type ExportFormat, exportChunks } from '../core/compliance/export';
import { RetentionPurge, retentionDue } from '../core/compliance/retention';
import { BlobStores } from '../core/blobs';
import { ENROLLMENT_STATES, type InventoryFilter, type Ledger, systemClock } from '../core/ports';
import { createLogger } from '../logging';

/**
 * Compliance commands on the configured ledger and stores (issue 9), as functions so a CLI
 * front end (npm scripts today) only parses arguments:
 *   npm run inventory -- [--format csv|ndjson] [--state S] [--legal-hold true|false] > file
 *   npm run purge -- [--dry-run]
 *   npm run audit:verify                      (exit 1 when the trail is broken)
 * With the embedded ledger they open the vault's PGlite directory, which PGlite does not
 * share between processes: stop the vault first, or use the HTTP routes.
 */

/** Streams the inventory to `out` with constant memory (the same export as HTTP). */
export async function inventoryCommand(
  ledger: Ledger,
  retentionDays: number,
  options: { format: ExportFormat; filter: InventoryFilter },
  out: Writable,
): Promise<number> {
  const progress = { rows: 0, complete: false };
  await pipeline(
    Readable.from(
      exportChunks({ ledger, retentionDays }, options.filter, options.format, progress),
      {
        highWaterMark: 1,
      },
    ),
    out,
    { end: false },
  );
  return progress.rows;
}

/** Lists what the retention purge would erase now: `userReference enrollmentReference...`. */
export async function purgeDryRun(ledger: Ledger, retentionDays: number): Promise<string[]> {
  const due = await retentionDue({ ledger, clock: systemClock, retentionDays }, 100_000);
  return due.map((d) => `${d.userReference}\t${d.enrollmentReferences.join(',')}`);
}

export async function auditVerifyCommand(
  config: VaultConfig,
  ledger: Ledger,
): Promise<VerifyReport> {
  const logger = createLogger('warn', process.stderr);
  const store = buildBlobStore(config);
  return verifyAuditTrail({
    ledger,
    blobs: new BlobStores(store),
    signer: await buildAuditSigner(config, logger),
    clock: systemClock,
    logger,
  });
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const USAGE = `usage:
  npm run inventory -- [--format csv|ndjson] [--state STATE] [--legal-hold true|false] > file
  npm run purge -- [--dry-run]
  npm run audit:verify`;

async function withLedger<T>(config: VaultConfig, fn: (ledger: Ledger) => Promise<T>): Promise<T> {
  const db = await openDatabase(config);
  try {
    await runMigrations(db);
    return await fn(new SqlLedger(db));
  } finally {
    await db.close();
  }
}

async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  if (!command || args.includes('-h') || args.includes('--help')) {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig(process.env);
  const { retentionDays } = config.compliance;
  if (command === 'inventory') {
    const format = option(args, '--format') ?? 'csv';
    const state = option(args, '--state');
    const hold = option(args, '--legal-hold');
    if (format !== 'csv' && format !== 'ndjson') throw new Error('--format must be csv or ndjson');
    if (state !== undefined && !(ENROLLMENT_STATES as readonly string[]).includes(state)) {
      throw new Error(`--state must be one of ${ENROLLMENT_STATES.join(', ')}`);
    }
    if (hold !== undefined && hold !== 'true' && hold !== 'false') {
      throw new Error('--legal-hold must be true or false');
    }
    const filter: InventoryFilter = {
      ...(state ? { state: state as InventoryFilter['state'] } : {}),
      ...(hold ? { legalHold: hold === 'true' } : {}),
    };
    const rows = await withLedger(config, (ledger) =>
      inventoryCommand(ledger, retentionDays, { format, filter }, process.stdout),
    );
    console.error(`${rows} enrollments exported`);
    return 0;
  }
  if (command === 'purge') {
    if (args.includes('--dry-run')) {
      const lines = await withLedger(config, (ledger) => purgeDryRun(ledger, retentionDays));
      for (const line of lines) console.log(line);
      console.error(
        `${lines.length} users have enrollments past their retention deadline (dry run)`,
      );
      return 0;
    }
    // A real purge needs the whole vault (blob stores, Jumio): the same path as the worker.
    const logger = createLogger('info', process.stderr).child({ cli: `purge:${osUser()}` });
    const container = await buildContainer(config, logger);
    try {
      const { ledger, erasures, clock } = container;
      const purge = new RetentionPurge({ ledger, erasures, clock, logger, retentionDays }, 0);
      // Slices of at most 100 users until nothing due is left (bounded: 1000 slices).
      for (let i = 0; i < 1000 && !(await purge.runSlice()).done; i++);
      let done = 0;
      for (
        let n = await container.erasures.runOnce();
        n > 0;
        n = await container.erasures.runOnce()
      ) {
        done += n;
      }
      console.error(`purge: ${done} erasure steps run`);
    } finally {
      await container.close();
    }
    return 0;
  }
  if (command === 'audit-verify') {
    const report = await withLedger(config, (ledger) => auditVerifyCommand(config, ledger));
    console.log(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  }
  console.error(USAGE);
  return 2;
}

function osUser(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(
        `failed: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}`,
      );
      process.exit(1);
    },
  );
}
