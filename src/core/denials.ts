import type { Clock, Ledger, Logger } from './ports';

/**
 * Invariant 9: every denied request is audited, but anonymous traffic must not cost a
 * write per request nor flood the trail. Denials are counted in memory per key (type,
 * source, reason, and caller or content type where they apply) and written as one summary
 * entry per key per interval: on a timer, and at shutdown.
 */

export type DenialType = 'request.denied' | 'callback.refused' | 'callback.unreadable';

export interface Denial {
  type: DenialType;
  /** The client address as derived under TRUST_PROXY (sanitized), when known. */
  sourceAddress: string | undefined;
  /** Machine-readable: `missing_token`, `source_not_allowed`, `empty_body`, ... */
  reason: string;
  /** The HTTP status answered. */
  status: number;
  /** The API key name, when the caller was identified (403). */
  caller?: string;
  /** The media type of an unreadable callback (no parameters), bounded. */
  contentType?: string;
  /** The body size an unreadable callback announced or sent, when known. */
  bytes?: number;
  /** Full path without query string (a sample: the last one seen per key). */
  path?: string;
  requestId?: string;
}

interface Bucket {
  type: DenialType;
  sourceAddress: string | null;
  reason: string;
  status: number;
  caller: string | null;
  contentType: string | null;
  /** True for the catch-all bucket once the key cap is reached. */
  overflow: boolean;
  count: number;
  firstSeen: Date;
  lastSeen: Date;
  maxBytes: number | null;
  lastPath: string | null;
  lastRequestId: string | null;
}

export interface DenialAggregatorOptions {
  /** How often the counts are written to the audit trail. */
  intervalMs: number;
  /** Distinct keys kept per interval; beyond it, denials count in one overflow bucket per type. */
  maxKeys?: number;
}

export const DEFAULT_MAX_DENIAL_KEYS = 1000;

export class DenialAggregator {
  private buckets = new Map<string, Bucket>();
  private timer: NodeJS.Timeout | undefined;
  /** The flush in progress (settled when none): flushes never overlap. */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly maxKeys: number;

  constructor(
    private readonly deps: { ledger: Ledger; clock: Clock; logger: Logger },
    private readonly options: DenialAggregatorOptions,
  ) {
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_DENIAL_KEYS;
  }

  /** Counts one denial. No I/O: the request is answered without waiting for anything. */
  record(denial: Denial): void {
    this.add(this.buckets, this.bucketOf(denial), true);
  }

  /** Distinct keys counted since the last flush (overflow buckets included). */
  get pendingKeys(): number {
    return this.buckets.size;
  }

  /** Writes one audit entry per key and starts a new interval; the number of entries written. */
  flush(): Promise<number> {
    // A caller arriving during a flush waits for it, then flushes what came since.
    const run = this.tail.then(() => this.write());
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Flushes every `intervalMs` until close(). The timer does not keep the process alive. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      // write() logs its own failure and keeps the counts for the next interval.
      void this.flush().catch(() => undefined);
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what was counted (the container's close()). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }

  private async write(): Promise<number> {
    if (this.buckets.size === 0) return 0;
    const batch = this.buckets;
    this.buckets = new Map();
    const intervalMs = this.options.intervalMs;
    try {
      await this.deps.ledger.transaction(async (tx) => {
        for (const b of batch.values()) {
          tx.audit.record({
            type: b.type,
            actor: b.caller ?? (b.type === 'request.denied' ? 'anonymous' : 'unknown'),
            details: {
              count: b.count,
              firstSeen: b.firstSeen.toISOString(),
              lastSeen: b.lastSeen.toISOString(),
              intervalMs,
              sourceAddress: b.sourceAddress,
              reason: b.reason,
              status: b.status,
              ...(b.caller === null ? {} : { caller: b.caller }),
              ...(b.contentType === null ? {} : { contentType: b.contentType }),
              ...(b.maxBytes === null ? {} : { maxBytes: b.maxBytes }),
              ...(b.overflow ? { overflow: true } : {}),
              lastPath: b.lastPath,
              lastRequestId: b.lastRequestId,
            },
          });
        }
      });
      return batch.size;
    } catch (error) {
      // Nothing is lost: the counts go back and are written with the next interval.
      for (const b of batch.values()) this.add(this.buckets, b, false);
      this.deps.logger.error(
        {
          keys: batch.size,
          errorName: error instanceof Error ? error.name : typeof error,
          errorMessage: error instanceof Error ? error.message : undefined,
        },
        'writing the denied-request summaries failed; kept for the next interval',
      );
      throw error;
    }
  }

  private bucketOf(denial: Denial): Bucket {
    const now = this.deps.clock.now();
    return {
      type: denial.type,
      sourceAddress: denial.sourceAddress ?? null,
      reason: denial.reason,
      status: denial.status,
      caller: denial.caller ?? null,
      contentType: denial.contentType ?? null,
      overflow: false,
      count: 1,
      firstSeen: now,
      lastSeen: now,
      maxBytes: denial.bytes ?? null,
      lastPath: denial.path ?? null,
      lastRequestId: denial.requestId ?? null,
    };
  }

  /**
   * Merges `incoming` into its key's bucket, or into the type's overflow bucket at the cap.
   * `newer`: it happened after what is counted (its path and request id become the sample).
   */
  private add(buckets: Map<string, Bucket>, incoming: Bucket, newer: boolean): void {
    let key = incoming.overflow
      ? overflowKey(incoming.type)
      : JSON.stringify([
          incoming.type,
          incoming.sourceAddress,
          incoming.reason,
          incoming.status,
          incoming.caller,
          incoming.contentType,
        ]);
    let target = buckets.get(key);
    if (target === undefined && !incoming.overflow && this.countKeys(buckets) >= this.maxKeys) {
      key = overflowKey(incoming.type);
      target = buckets.get(key);
      if (target === undefined) {
        target = {
          ...incoming,
          sourceAddress: null,
          reason: 'overflow',
          caller: null,
          contentType: null,
          overflow: true,
          count: 0,
          firstSeen: incoming.firstSeen,
          lastSeen: incoming.lastSeen,
          maxBytes: null,
        };
        buckets.set(key, target);
      }
    }
    if (target === undefined) {
      buckets.set(key, { ...incoming });
      return;
    }
    target.count += incoming.count;
    if (incoming.firstSeen < target.firstSeen) target.firstSeen = incoming.firstSeen;
    if (incoming.lastSeen > target.lastSeen) target.lastSeen = incoming.lastSeen;
    if (incoming.maxBytes !== null) {
      target.maxBytes = Math.max(target.maxBytes ?? 0, incoming.maxBytes);
    }
    if (newer || target.lastPath === null) {
      target.lastPath = incoming.lastPath ?? target.lastPath;
      target.lastRequestId = incoming.lastRequestId ?? target.lastRequestId;
    }
  }

  /** Keys counted against the cap: overflow buckets are outside it. */
  private countKeys(buckets: Map<string, Bucket>): number {
    let n = buckets.size;
    for (const type of ['request.denied', 'callback.refused', 'callback.unreadable'] as const) {
      if (buckets.has(overflowKey(type))) n -= 1;
    }
    return n;
  }
}

function overflowKey(type: DenialType): string {
  return `overflow:${type}`;
}
