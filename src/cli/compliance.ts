import { loadConfig } from '../config';
import { withLedger } from '../adapters/ledger/open';
import { buildAuditSigner, buildBlobStore, buildContainer } from '../container';
import { BlobStores } from '../core/blobs';
import { verifyAndRecord, type VerifyReport } from '../core/compliance/audit-trail';
import { RetentionPurge, retentionDue } from '../core/compliance/retention';
import { systemClock } from '../core/ports';
import { createLogger } from '../logging';
import { cliActor, type Io } from './io';
import { startProgress } from './progress';

/**
 * The compliance commands `vault purge` and `vault audit verify` (`vault inventory` is in
 * inventory.ts: it needs the ledger alone) on the configured ledger and stores. With the
 * embedded ledger they open the vault's PGlite directory, which belongs to one process:
 * stop the vault first, or use the HTTP routes.
 */

/**
 * `vault purge`: erases what is past its retention deadline now, through the same path as
 * the worker (reason `retention`); `--dry-run` lists it instead.
 */
export async function purge(options: { dryRun: boolean; json: boolean }, io: Io): Promise<number> {
  const config = loadConfig(io.env);
  const { retentionDays } = config.compliance;
  if (options.dryRun) {
    const due = await withLedger(config, (ledger) =>
      retentionDue({ ledger, clock: systemClock, retentionDays }, 100_000),
    );
    if (options.json) io.out(JSON.stringify({ dryRun: true, due }));
    else for (const d of due) io.out(`${d.userReference}\t${d.enrollmentReferences.join(',')}`);
    io.err(`${due.length} users have enrollments past their retention deadline (dry run)`);
    return 0;
  }
  // A real purge needs the whole vault (blob stores, Jumio): the same path as the worker.
  const logger = createLogger('warn', process.stderr).child({
    command: 'purge',
    actor: cliActor(io.env),
  });
  const container = await buildContainer(config, logger);
  try {
    const { ledger, erasures, clock } = container;
    const due = await retentionDue({ ledger, clock, retentionDays }, 100_000);
    const progress = startProgress({ label: 'erasure steps', total: 0 });
    const task = new RetentionPurge({ ledger, erasures, clock, logger, retentionDays }, 0);
    let steps = 0;
    try {
      // Slices of at most 100 users until nothing due is left (bounded: 1000 slices).
      for (let i = 0; i < 1000 && !(await task.runSlice()).done; i++);
      for (let n = await erasures.runOnce(); n > 0; n = await erasures.runOnce()) {
        steps += n;
        progress.increment(n);
      }
    } finally {
      progress.stop();
    }
    if (options.json) io.out(JSON.stringify({ dryRun: false, users: due.length, steps }));
    io.err(`purge: ${due.length} users past their deadline, ${steps} erasure steps run`);
  } finally {
    await container.close();
  }
  return 0;
}

/**
 * `vault audit verify`: the chain and every digest, with the result recorded in the trail
 * (`audit.verified`, by `cli:<os user>`) as the API records its own; exit 1 when broken.
 */
export async function auditVerify(options: { json: boolean }, io: Io): Promise<number> {
  const config = loadConfig(io.env);
  const logger = createLogger('warn', process.stderr);
  const report: VerifyReport = await withLedger(config, async (ledger) =>
    verifyAndRecord(
      {
        ledger,
        blobs: new BlobStores(buildBlobStore(config)),
        signer: await buildAuditSigner(config, logger),
        clock: systemClock,
        logger,
      },
      cliActor(io.env),
    ),
  );
  if (options.json) io.out(JSON.stringify(report));
  else if (report.ok) {
    io.out(
      `ok: the audit trail verifies through sequence ${report.checkedThrough} (${report.digestsChecked} digests)`,
    );
  } else {
    io.out(`BROKEN: ${JSON.stringify(report)}`);
  }
  return report.ok ? 0 : 1;
}
