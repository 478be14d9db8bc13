import { DependencyError } from './errors';

export interface GroupCommitOptions {
  /** Most items committed together in one transaction. */
  maxBatch: number;
  /** Most items waiting for a commit; beyond it `submit` refuses at once (backpressure). */
  maxQueued: number;
  /**
   * Commits in flight at once (default 1). Above 1 only where the database runs
   * transactions in parallel (a PostgreSQL pool): round trips of one overlap another's.
   */
  concurrency?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

/**
 * Group commit: items that arrive while a commit runs wait and are then committed together
 * by ONE call of `commit` (one transaction), so the cost of a durable commit is shared by
 * everything that arrived meanwhile. Nothing waits on a timer: an item arriving when idle is
 * committed at once, alone. Each `submit` settles only after the commit holding its item
 * settled, so a caller that answers on resolution never answers before the commit.
 *
 * When a batch of several fails for a reason other than an unavailable dependency, its
 * items are committed again one by one, so one bad item cannot fail the others; when the
 * dependency is unavailable every item gets the error (a retry would only wait as long).
 */
export class GroupCommit<I, O> {
  private readonly queue: Array<Waiting<I, O>> = [];
  private active = 0;
  /** Commits made (for tests and metrics): fewer than items when batching works. */
  commits = 0;

  constructor(
    private readonly commit: (items: I[]) => Promise<O[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(item: I): Promise<O> {
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(
        new DependencyError('ledger', 'too many callbacks waiting for a commit; retry later'),
      );
    }
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.active < (this.options.concurrency ?? 1)) {
        this.active++;
        void this.drain();
      }
    });
  }

  /** Items submitted and not yet settled (waiting or in a commit). */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }
  private inFlight = 0;

  /** One committer: takes batches until the queue is empty. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // One turn of the event loop first: requests already read but not yet handled join
        // this batch (an in-process database can otherwise finish a whole commit before
        // the next request is even parsed, and every batch would hold one item).
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = this.queue.splice(0, this.options.maxBatch);
        await this.run(batch);
      }
    } finally {
      this.active--;
    }
  }

  private async run(batch: Array<Waiting<I, O>>): Promise<void> {
    this.inFlight += batch.length;
    try {
      this.commits++;
      const results = await this.commit(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (error) {
      if (batch.length === 1 || error instanceof DependencyError) {
        for (const w of batch) w.reject(error);
        return;
      }
      for (const w of batch) await this.run([w]);
    } finally {
      this.inFlight -= batch.length;
    }
  }
}
