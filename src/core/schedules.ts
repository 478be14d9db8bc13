import type { Clock, Ledger, LedgerTx, ScheduleRecord } from './ports';
import type { Backoff, Job, StepResult } from './work';

export interface TaskSlice {
  /** Where the next slice resumes; `{}` once the pass is complete. */
  progress: Record<string, unknown>;
  /** The pass is complete: the task is due again after its interval. */
  done: boolean;
  /** The slice's ledger writes (audit entries), committed with its progress. */
  apply?: (tx: LedgerTx) => Promise<void>;
}

/**
 * A periodic task (orphan sweep, audit digests, retention purge): one bounded slice per
 * step, resumable from its saved progress, so a pass survives restarts and never holds a
 * lease longer than a slice takes.
 */
export interface PeriodicTask {
  readonly name: string;
  readonly intervalMs: number;
  /** `attempts`: consecutive failed slices, so a task can drop progress that keeps failing. */
  runSlice(progress: Record<string, unknown>, attempts: number, now: Date): Promise<TaskSlice>;
}

/** A row this replica does not know (a newer version's task) is looked at again later. */
const UNKNOWN_TASK_RECHECK_MS = 10 * 60_000;

/** The `schedules` queue: each periodic task is one row, leased like any other work. */
export class ScheduleJob implements Job<ScheduleRecord> {
  readonly queue = 'schedules' as const;
  /** A failing slice is retried for as long as it takes, never FAILED: its metric alarms. */
  readonly backoff: Backoff = { baseMs: 10_000, maxMs: 15 * 60_000, maxAttempts: Infinity };
  private readonly tasks: Map<string, PeriodicTask>;

  constructor(
    tasks: PeriodicTask[],
    private readonly deps: { ledger: Ledger; clock: Clock },
  ) {
    this.tasks = new Map(tasks.map((t) => [t.name, t]));
  }

  /** Creates each task's row (due now) unless it exists; run at start-up by every replica. */
  async ensureScheduled(): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.ledger.transaction(async (tx) => {
      for (const name of this.tasks.keys()) await tx.schedules.ensure(name, now);
    });
  }

  load(tx: LedgerTx, key: string): Promise<ScheduleRecord | null> {
    return tx.schedules.get(key);
  }

  stepOf(row: ScheduleRecord): string {
    return row.name;
  }

  attemptsOf(row: ScheduleRecord): number {
    return row.attempts;
  }

  async perform(row: ScheduleRecord): Promise<StepResult> {
    const now = this.deps.clock.now();
    const task = this.tasks.get(row.name);
    if (!task) return { nextAttemptAt: new Date(now.getTime() + UNKNOWN_TASK_RECHECK_MS) };
    const slice = await task.runSlice(row.progress, row.attempts, now);
    return {
      apply: async (tx) => {
        await slice.apply?.(tx);
        await tx.schedules.saveProgress(row.name, slice.progress, slice.done ? now : null);
      },
      nextAttemptAt: slice.done ? new Date(now.getTime() + task.intervalMs) : now,
    };
  }

  async exhaust(): Promise<null> {
    return null;
  }
}
