import { randomUUID } from 'node:crypto';
import { VaultError } from '../errors';
import type {
  Clock,
  Ledger,
  LedgerTx,
  Logger,
  NotificationRecord,
  NotificationSender,
  NotificationState,
} from '../ports';
import { type Backoff, errorSummary, type Job, type StepResult } from '../work';

/** How long a notification is retried before it is left FAILED (and re-sendable). */
export const DELIVERY_WINDOW_MS = 24 * 60 * 60 * 1000;

export const NOTIFICATION_BACKOFF: Backoff = {
  baseMs: 5_000,
  maxMs: 60 * 60_000,
  // The window, not a count, ends the retries (see NotificationJob.perform).
  maxAttempts: Infinity,
};

/**
 * Writes an event to the outbox, inside the caller's transaction: it is sent if and only if
 * the state change it reports commits. The id is the `webhook-id` of every attempt.
 */
export async function enqueueNotification(
  tx: LedgerTx,
  event: { type: string; url: string; authenticationReference: string | null; data: object },
  now: Date,
): Promise<string> {
  const id = `msg_${randomUUID().replace(/-/g, '')}`;
  const payload = JSON.stringify({
    type: event.type,
    timestamp: now.toISOString(),
    data: event.data,
  });
  await tx.notifications.insert(
    {
      id,
      type: event.type,
      authenticationReference: event.authenticationReference,
      url: event.url,
      payload,
      deliverUntil: new Date(now.getTime() + DELIVERY_WINDOW_MS),
      nextAttemptAt: now,
    },
    now,
  );
  return id;
}

/** The receiver did not answer 2xx, or did not answer at all. */
export class NotificationDeliveryError extends VaultError {
  constructor(message: string) {
    super('notification_not_delivered', message);
  }
}

/**
 * The outbox, delivered at least once by the shared worker mechanism: each attempt is one
 * signed POST (NotificationSender), retried with backoff until 2xx, or left FAILED once the
 * 24-hour window is over.
 */
export class NotificationJob implements Job<NotificationRecord> {
  readonly queue = 'notifications' as const;

  constructor(
    private readonly deps: { sender: NotificationSender; clock: Clock; logger: Logger },
    readonly backoff: Backoff = NOTIFICATION_BACKOFF,
  ) {}

  load(tx: LedgerTx, key: string): Promise<NotificationRecord | null> {
    return tx.notifications.get(key);
  }

  stepOf(n: NotificationRecord): string | null {
    return n.state === 'PENDING' ? 'deliver' : null;
  }

  attemptsOf(n: NotificationRecord): number {
    return n.attempts;
  }

  async perform(n: NotificationRecord): Promise<StepResult> {
    let status: number | null = null;
    let failure: string;
    try {
      ({ status } = await this.deps.sender.send({ id: n.id, url: n.url, payload: n.payload }));
      failure = `receiver answered HTTP ${status}`;
    } catch (error) {
      failure = errorSummary(error);
    }
    const now = this.deps.clock.now();
    if (status !== null && status >= 200 && status < 300) {
      return {
        nextAttemptAt: null,
        apply: async (tx) => {
          await tx.notifications.update(
            n.id,
            { state: 'DELIVERED', deliveredAt: now, lastStatus: status, lastError: null },
            now,
          );
        },
      };
    }
    if (now < n.deliverUntil) throw new NotificationDeliveryError(failure);
    const attempts = n.attempts + 1;
    this.deps.logger.warn({ notification: n.id, attempts, err: failure }, 'notification FAILED');
    return {
      attempts,
      lastError: failure,
      nextAttemptAt: null,
      apply: async (tx) => {
        await tx.notifications.update(n.id, { state: 'FAILED', lastStatus: status }, now);
        tx.audit.record({
          type: 'notification.failed',
          actor: 'system',
          authenticationReference: n.authenticationReference,
          details: { notification: n.id, attempts, lastError: failure, lastStatus: status },
        });
      },
    };
  }

  async exhaust(): Promise<null> {
    return null;
  }
}

/** What the admin API shows of a notification (the payload is the caller's, not shown). */
export interface NotificationView {
  id: string;
  type: string;
  authenticationReference: string | null;
  url: string;
  state: NotificationState;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  createdAt: string;
  deliverUntil: string;
  nextAttemptAt?: string;
  deliveredAt?: string;
}

export function toNotificationView(n: NotificationRecord): NotificationView {
  return {
    id: n.id,
    type: n.type,
    authenticationReference: n.authenticationReference,
    url: n.url,
    state: n.state,
    attempts: n.attempts,
    ...(n.lastStatus !== null ? { lastStatus: n.lastStatus } : {}),
    ...(n.lastError ? { lastError: n.lastError } : {}),
    createdAt: n.createdAt.toISOString(),
    deliverUntil: n.deliverUntil.toISOString(),
    ...(n.nextAttemptAt ? { nextAttemptAt: n.nextAttemptAt.toISOString() } : {}),
    ...(n.deliveredAt ? { deliveredAt: n.deliveredAt.toISOString() } : {}),
  };
}

export class NotificationNotFoundError extends VaultError {
  constructor() {
    super('not_found', 'no notification with this id');
  }
}

export class NotificationPendingError extends VaultError {
  constructor() {
    super('conflict', 'the notification is still PENDING: it is being delivered');
  }
}

/** The admin side of the outbox: see what failed, send it again. */
export class NotificationAdmin {
  constructor(private readonly deps: { ledger: Ledger; clock: Clock }) {}

  async list(filter: {
    state?: NotificationState;
    limit: number;
    after?: { createdAt: Date; key: string };
  }): Promise<NotificationRecord[]> {
    return this.deps.ledger.transaction((tx) => tx.notifications.list(filter));
  }

  /** FAILED or DELIVERED -> PENDING with a fresh 24-hour window, the same id. Audited. */
  async redeliver(id: string, actor: string): Promise<NotificationView> {
    const now = this.deps.clock.now();
    return this.deps.ledger.transaction(async (tx) => {
      const n = await tx.notifications.get(id, { forUpdate: true });
      if (!n) throw new NotificationNotFoundError();
      if (n.state === 'PENDING') throw new NotificationPendingError();
      const patch = {
        state: 'PENDING' as const,
        attempts: 0,
        lastError: null,
        nextAttemptAt: now,
        deliverUntil: new Date(now.getTime() + DELIVERY_WINDOW_MS),
      };
      await tx.notifications.update(id, patch, now);
      tx.audit.record({
        type: 'notification.redelivered',
        actor,
        authenticationReference: n.authenticationReference,
        details: { notification: id, previousState: n.state },
      });
      return toNotificationView({ ...n, ...patch });
    });
  }
}
