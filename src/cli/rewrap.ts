import { userInfo } from 'node:os';
import { loadConfig } from '../config';
import { openLedger } from '../adapters/ledger/open';
import { buildBlobStore, buildEnvelope, openUserReferenceHasher } from '../container';
import { BlobStores } from '../core/blobs';
import { KeyRewrap, type RewrapOptions, type RewrapResult } from '../core/keys/rewrap';
import type { KeyReport } from '../core/keys/report';
import { systemClock } from '../core/ports';
import { createLogger } from '../logging';
import type { Io } from './io';
import { startProgress } from './progress';

/**
 * `vault rewrap`: moves every stored facemap and wrapped vault key from the previous keys
 * (KMS_PREVIOUS_KEY_IDS, VAULT_LOCAL_PREVIOUS_KEY_FILES) to the current key, so that the
 * previous keys can be retired (core/keys/rewrap.ts). Safe next to running vaults on
 * PostgreSQL (row leases, as the workers take them); stopped at any point (Ctrl-C, a
 * crash), it is run again and picks up what is left.
 */

export interface RewrapCommandOptions {
  dryRun: boolean;
  json: boolean;
  limit?: number;
  concurrency: number;
  maxPerSecond?: number;
  leaseSeconds: number;
  waitSeconds: number;
}

function osUser(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

function printKeys(report: KeyReport, io: Io): void {
  const width = Math.max(...report.keys.map((k) => k.keyId.length));
  for (const k of report.keys) {
    const note =
      k.status === 'unknown'
        ? '  NOT CONFIGURED: cannot be decrypted here'
        : k.status === 'previous' && k.facemaps + k.vaultKeys > 0
          ? '  (rewrap moves these)'
          : '';
    io.out(
      `${k.keyId.padEnd(width)}  ${k.status.padEnd(8)}  ${k.facemaps} facemap(s), ${k.vaultKeys} vault key(s)${note}`,
    );
  }
}

/** Ctrl-C (or SIGTERM) once: finish the facemaps in flight and stop; twice: stop at once. */
function interruptible(io: Io): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    io.err('rewrap: stopping after the facemaps in flight (again to stop at once)');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function rewrap(
  options: RewrapCommandOptions,
  io: Io,
  progressStream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): Promise<number> {
  const config = loadConfig(io.env);
  const logger = createLogger('warn', process.stderr).child({ cli: 'rewrap' });
  const envelope = await buildEnvelope(config, logger, { createLocalKey: false });
  // Migrated first (as the migration role), then opened as the vault runs (its pool).
  await (await openLedger(config)).db.close();
  const { db, ledger } = await openLedger(config, { migrate: false });
  const interrupt = interruptible(io);
  try {
    const hashUserReference = await openUserReferenceHasher(config, ledger, envelope);
    const deps = {
      ledger,
      blobs: new BlobStores(buildBlobStore(config)),
      envelope,
      clock: systemClock,
      logger,
      hashUserReference,
    };
    const settings: RewrapOptions = {
      actor: `cli:${osUser()}`,
      limit: options.limit,
      concurrency: options.concurrency,
      maxPerSecond: options.maxPerSecond,
      leaseMs: options.leaseSeconds * 1000,
      waitMs: options.waitSeconds * 1000,
      signal: interrupt.signal,
    };
    const plan = await new KeyRewrap(deps, settings).plan();
    if (options.dryRun) {
      if (options.json) {
        io.out(
          JSON.stringify({
            dryRun: true,
            ...plan.report,
            wouldRewrap: { facemaps: plan.facemaps, vaultKeys: plan.vaultKeys },
          }),
        );
      } else {
        io.out(`current key: ${plan.report.currentKeyId}`);
        printKeys(plan.report, io);
        io.out(
          `would rewrap ${plan.facemaps} facemap(s) and ${plan.vaultKeys.length} vault key(s)` +
            (plan.vaultKeys.length ? ` (${plan.vaultKeys.join(', ')})` : '') +
            ' to the current key (dry run: nothing changed)',
        );
      }
      return 0;
    }
    const progress = startProgress({
      label: 'rewrapped',
      total: plan.facemaps,
      stream: progressStream,
    });
    let result: RewrapResult;
    try {
      result = await new KeyRewrap(deps, {
        ...settings,
        onFacemap: (outcome) => {
          if (outcome === 'rewrapped' || outcome === 'failed') progress.increment();
        },
      }).run();
    } finally {
      progress.stop();
    }
    const complete =
      result.failed.length === 0 &&
      result.vaultKeys.failed.length === 0 &&
      result.pending === 0 &&
      result.unreadable === 0 &&
      !result.interrupted;
    if (options.json) {
      io.out(JSON.stringify({ dryRun: false, currentKeyId: envelope.keyId, complete, ...result }));
    } else {
      io.out(
        `rewrapped ${result.rewrapped} facemap(s) and ${result.vaultKeys.rewrapped.length} ` +
          `vault key(s) to ${envelope.keyId}`,
      );
      for (const f of result.failed) io.out(`failed: facemap ${f.enrollmentReference}: ${f.error}`);
      for (const f of result.vaultKeys.failed) io.out(`failed: vault key ${f.name}: ${f.error}`);
      if (result.pending > 0) {
        io.out(
          `pending: ${result.pending} facemap(s) still under a previous key (held by another ` +
            'worker, or not reached): run vault rewrap again',
        );
      }
      if (result.unreadable > 0) {
        io.out(
          `unreadable: ${result.unreadable} facemap(s) under a key that is not configured ` +
            '(GET /v1/keys names it): add it to KMS_PREVIOUS_KEY_IDS or VAULT_LOCAL_PREVIOUS_KEY_FILES',
        );
      }
      if (result.oldObjectsLeft > 0) {
        io.out(
          `${result.oldObjectsLeft} old object(s) could not be deleted: the orphan sweep removes them`,
        );
      }
      if (result.interrupted) io.out('interrupted: run vault rewrap again to finish');
      if (complete) io.out('nothing left under a previous key: see GET /v1/keys, vault doctor');
    }
    return complete ? 0 : 1;
  } finally {
    interrupt.dispose();
    await db.close();
  }
}
