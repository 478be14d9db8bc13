import { randomBytes } from 'node:crypto';
import { VaultError } from './errors';
import type { Clock, LedgerTx, Ledger, Logger, QueueName } from './ports';

/**
 * The one mechanism for background work (design.md, "Architecture"): due rows of a queue,
 * leased one at a time with FOR UPDATE SKIP LOCKED, advanced by one step, committed in a
 * transaction fenced by the lease, retried with backoff, and ended in a visible state when
 * the budget is spent. A new background job is a new `Job`, not a new loop.
 *
 * One row is leased per claim, not a batch: a batch's later leases could expire while the
 * earlier rows run, and another replica would then repeat their work.
 */

export interface Backoff {
  /** base * 2^(attempt-1), capped at maxMs, with equal jitter. */
  baseMs: number;
  maxMs: number;
  /** Consecutive failures before `Job.exhaust` ends the row. */
  maxAttempts: number;
}

export interface StepResult {
  /**
   * The step's effects (state changes, audit entries), written in the fenced transaction.
   * It may decide there when the row is due again, overriding `nextAttemptAt`.
   */
  apply?: (tx: LedgerTx) => Promise<void | { nextAttemptAt: Date | null }>;
  /** When the row is due again: now for its next step, later to poll, null when done. */
  nextAttemptAt: Date | null;
  /** Attempts counted against the budget: 0 (the default) after progress. */
  attempts?: number;
  lastError?: string | null;
}

export interface Job<T> {
  readonly queue: QueueName;
  readonly backoff: Backoff;
  /** Reads the row just leased (inside the claiming transaction). */
  load(tx: LedgerTx, key: string): Promise<T | null>;
  /** The step the row needs next (for logs, metrics and hooks); null when it needs none. */
  stepOf(row: T): string | null;
  attemptsOf(row: T): number;
  /** The step's I/O, outside any transaction. Throwing retries it with backoff. */
  perform(row: T, step: string): Promise<StepResult>;
  /**
   * How the row ends once `backoff.maxAttempts` failures in a row were spent on `step` (a
   * visible, replayable FAILED state). Null: this step is retried for as long as it takes.
   */
  exhaust(row: T, step: string, attempts: number, lastError: string): Promise<StepResult | null>;
}

export type StepOutcome = 'done' | 'retry' | 'exhausted' | 'lost';

export interface WorkHooks {
  /** Test hook between a step's I/O and its commit (crash injection). */
  beforeCommit?(queue: QueueName, step: string, key: string): Promise<void> | void;
  /** Test hook after a step committed (crash injection). */
  afterCommit?(queue: QueueName, step: string, key: string): Promise<void> | void;
  /** Every step's outcome and duration (metrics). */
  observe?(event: { queue: QueueName; step: string; outcome: StepOutcome; seconds: number }): void;
}

export interface WorkerOptions {
  owner?: string;
  /** How long a claimed row stays ours: longer than any single step can take. */
  leaseMs?: number;
  hooks?: WorkHooks;
  random?: () => number;
}

/** A PII-free summary for `last_error`: domain errors carry safe messages by construction. */
export function errorSummary(error: unknown): string {
  if (error instanceof VaultError) return `${error.code}: ${error.message}`.slice(0, 500);
  return `internal_error: ${error instanceof Error ? error.name : 'unknown'}`;
}

/** What a failure asked for in Retry-After (Jumio's 429 and 503 carry it). */
function retryAfterOf(error: unknown): number {
  const value = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** Runs one job's steps for one owner (a process, or a test's "replica"). */
export class Worker<T> {
  readonly owner: string;
  private readonly leaseMs: number;
  private readonly hooks: WorkHooks;
  private readonly random: () => number;

  constructor(
    readonly job: Job<T>,
    private readonly deps: { ledger: Ledger; clock: Clock; logger: Logger },
    options: WorkerOptions = {},
  ) {
    this.owner = options.owner ?? `worker-${randomBytes(6).toString('hex')}`;
    this.leaseMs = options.leaseMs ?? 5 * 60_000;
    this.hooks = options.hooks ?? {};
    this.random = options.random ?? Math.random;
  }

  /**
   * One pass: advances up to `limit` rows that were due when the pass began by one step
   * each (a row made due again by its own step waits for the next pass). Returns how many
   * it claimed.
   */
  async runOnce(limit = 10): Promise<number> {
    const passStart = this.deps.clock.now();
    let handled = 0;
    while (handled < limit) {
      const claimed = await this.claim(passStart);
      if (!claimed) break;
      handled += 1;
      await this.advance(claimed.key, claimed.row);
    }
    return handled;
  }

  private claim(dueBy: Date): Promise<{ key: string; row: T | null } | null> {
    const { queue } = this.job;
    return this.deps.ledger.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const key = await tx.queues.claim(queue, this.owner, now, this.leaseMs, dueBy);
      return key === null ? null : { key, row: await this.job.load(tx, key) };
    });
  }

  private async advance(key: string, row: T | null): Promise<void> {
    const { queue } = this.job;
    const step = row === null ? null : this.job.stepOf(row);
    const log = this.deps.logger.child({ queue, key, step });
    if (row === null || step === null) {
      // Nothing to do (the row changed since it became due): take it off the queue.
      await this.commit(key, { nextAttemptAt: null });
      return;
    }
    const started = process.hrtime.bigint();
    let result: StepResult | undefined;
    let failure: unknown;
    try {
      result = await this.job.perform(row, step);
    } catch (error) {
      failure = error;
    }
    let outcome: StepOutcome;
    if (result) {
      // Outside any try: a hook that throws stops this worker as a crash would.
      await this.hooks.beforeCommit?.(queue, step, key);
      try {
        outcome = (await this.commit(key, result)) ? 'done' : 'lost';
      } catch (error) {
        // The lease runs out and the step is done again; its effects are idempotent.
        log.error({ err: errorSummary(error) }, 'could not commit a step');
        outcome = 'retry';
      }
    } else {
      outcome = await this.recordFailure(key, row, step, failure, log);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.hooks.observe?.({ queue, step, outcome, seconds });
    if (outcome === 'lost') {
      log.warn({}, 'lease lost before commit; another worker owns this row');
    }
    if (outcome === 'done') await this.hooks.afterCommit?.(queue, step, key);
  }

  private async recordFailure(
    key: string,
    row: T,
    step: string,
    error: unknown,
    log: Logger,
  ): Promise<StepOutcome> {
    const attempts = this.job.attemptsOf(row) + 1;
    const lastError = errorSummary(error);
    log.warn({ err: lastError, attempts }, 'step failed');
    try {
      if (attempts >= this.job.backoff.maxAttempts) {
        const ending = await this.job.exhaust(row, step, attempts, lastError);
        if (ending) {
          return (await this.commit(key, { attempts, lastError, ...ending }))
            ? 'exhausted'
            : 'lost';
        }
      }
      const { baseMs, maxMs } = this.job.backoff;
      const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempts - 1, 30));
      // Equal jitter: at least half the backoff, so retries spread without collapsing to 0.
      const delay = Math.max(exp / 2 + (this.random() * exp) / 2, retryAfterOf(error));
      const nextAttemptAt = new Date(this.deps.clock.now().getTime() + delay);
      return (await this.commit(key, { attempts, lastError, nextAttemptAt })) ? 'retry' : 'lost';
    } catch (commitError) {
      // The lease will expire and the step be retried; nothing is lost.
      log.error({ err: errorSummary(commitError) }, 'could not record a failure');
      return 'retry';
    }
  }

  /** Applies a step's result in one transaction, fenced by our lease. */
  private commit(key: string, result: StepResult): Promise<boolean> {
    const { queue } = this.job;
    return this.deps.ledger.transaction(async (tx) => {
      if (!(await tx.queues.holds(queue, key, this.owner))) return false;
      const decided = await result.apply?.(tx);
      await tx.queues.settle(
        queue,
        key,
        {
          attempts: result.attempts ?? 0,
          nextAttemptAt: decided ? decided.nextAttemptAt : result.nextAttemptAt,
          lastError: result.lastError ?? null,
        },
        this.deps.clock.now(),
      );
      return true;
    });
  }
}
