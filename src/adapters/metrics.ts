import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  type JumioApi,
  JumioInvalidRequestError,
  JumioInvalidResponseError,
  JumioNetworkError,
  JumioNotFoundError,
  JumioRateLimitedError,
  JumioRequestRejectedError,
  JumioTimeoutError,
  JumioUnauthorizedError,
  JumioUpstreamError,
} from '../core/jumio';
import {
  type BlobStore,
  ENROLLMENT_STATES,
  type Envelope,
  type Ledger,
  type LedgerTx,
  QUEUES,
  type QueueName,
} from '../core/ports';
import type { WorkHooks } from '../core/work';

/**
 * The vault's Prometheus series (design: observe at the ports). Adapters are wrapped by
 * decorators built in the composition root; use cases are counted through the domain
 * events they emit (audit entries) and the worker's step hook. No label ever carries a
 * reference or any other unbounded value.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Histogram({
    name: 'vault_http_request_duration_seconds',
    help: 'HTTP requests by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly callbacks = new Counter({
    name: 'vault_callbacks_total',
    help: 'Jumio callbacks by callBackType and outcome (committed, refused, invalid, failed)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly steps = new Histogram({
    name: 'vault_work_step_duration_seconds',
    help: 'Background steps by queue, step and outcome (done, retry, exhausted, lost)',
    labelNames: ['queue', 'step', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly jumio = new Histogram({
    name: 'vault_jumio_request_duration_seconds',
    help: 'Calls to Jumio by endpoint and status (HTTP status, or timeout / network_error / invalid_response)',
    labelNames: ['endpoint', 'status'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly jumioRequests = new Counter({
    name: 'vault_jumio_requests_total',
    help: 'Calls to Jumio by endpoint and status',
    labelNames: ['endpoint', 'status'] as const,
    registers: [this.registry],
  });

  readonly blobs = new Histogram({
    name: 'vault_blob_operation_duration_seconds',
    help: 'Blob store operations by operation and outcome',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly envelope = new Histogram({
    name: 'vault_envelope_operation_duration_seconds',
    help: 'Envelope encryption (KMS or local key) by operation and outcome',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly ledgerTransactions = new Histogram({
    name: 'vault_ledger_transaction_duration_seconds',
    help: 'Ledger transactions by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly auditEvents = new Counter({
    name: 'vault_audit_events_total',
    help: 'Audit entries committed, by type (the domain events: stored, decrypted, erased...)',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly authentications = new Counter({
    name: 'vault_authentications_total',
    help: 'Authentications reaching a final state, by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly notificationDeliveries = new Counter({
    name: 'vault_notification_deliveries_total',
    help: 'Notification delivery attempts by outcome (delivered, retry, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vault_' });
  }

  /** Queue depth and state counts, read from the ledger when Prometheus scrapes. */
  observeLedger(ledger: Ledger, now: () => Date): void {
    // The four series share one read per scrape (prom-client collects them concurrently):
    // one ledger transaction. A ledger that does not answer leaves the last values (its
    // failure shows in the ledger series).
    let inflight: Promise<LedgerSnapshot | null> | undefined;
    const snapshot = () =>
      (inflight ??= readSnapshot(ledger, now()).finally(() => {
        setImmediate(() => (inflight = undefined));
      }));
    const gauge = (
      name: string,
      help: string,
      label: 'queue' | 'state',
      fill: (g: Gauge, s: LedgerSnapshot) => void,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [this.registry],
        async collect() {
          const s = await snapshot();
          if (s) fill(this, s);
        },
      });
    const perQueue =
      (pick: (q: LedgerSnapshot['queues'][number]) => number) => (g: Gauge, s: LedgerSnapshot) =>
        s.queues.forEach((q) => g.set({ queue: q.queue }, pick(q)));
    gauge(
      'vault_queue_due',
      'Rows due and waiting for a worker, per queue',
      'queue',
      perQueue((q) => q.due),
    );
    gauge(
      'vault_queue_leased',
      'Rows a worker is working on, per queue',
      'queue',
      perQueue((q) => q.leased),
    );
    gauge(
      'vault_queue_oldest_due_age_seconds',
      'Age of the longest-waiting due row, per queue (0 when none)',
      'queue',
      perQueue((q) => q.oldestAgeSeconds),
    );
    gauge('vault_enrollments', 'Enrollments by state', 'state', (g, s) => {
      for (const state of ENROLLMENT_STATES) g.set({ state }, s.states[state] ?? 0);
    });
  }

  /** The worker's step hook: every queue's steps, and the notification deliveries. */
  readonly workHooks: WorkHooks = {
    observe: ({ queue, step, outcome, seconds }) => {
      this.steps.observe({ queue, step, outcome }, seconds);
      if (queue === 'notifications' && outcome !== 'lost') {
        const delivery = { done: 'delivered', retry: 'retry', exhausted: 'failed' }[outcome];
        this.notificationDeliveries.inc({ outcome: delivery });
      }
    },
  };
}

interface LedgerSnapshot {
  queues: { queue: QueueName; due: number; leased: number; oldestAgeSeconds: number }[];
  states: Partial<Record<(typeof ENROLLMENT_STATES)[number], number>>;
}

async function readSnapshot(ledger: Ledger, at: Date): Promise<LedgerSnapshot | null> {
  try {
    return await ledger.transaction(async (tx) => {
      const queues = [];
      for (const queue of QUEUES) {
        const s = await tx.queues.stats(queue, at);
        const age = s.oldestDueAt ? (at.getTime() - s.oldestDueAt.getTime()) / 1000 : 0;
        queues.push({ queue, due: s.due, leased: s.leased, oldestAgeSeconds: Math.max(0, age) });
      }
      return { queues, states: await tx.enrollments.countByState() };
    });
  } catch {
    return null;
  }
}

async function timed<T>(
  observe: (outcome: string, seconds: number) => void,
  work: () => Promise<T>,
) {
  const started = process.hrtime.bigint();
  try {
    const result = await work();
    observe('ok', Number(process.hrtime.bigint() - started) / 1e9);
    return result;
  } catch (error) {
    observe('error', Number(process.hrtime.bigint() - started) / 1e9);
    throw error;
  }
}

/** Wraps every method of `target` listed in `methods` with `wrap`. */
function decorate<T extends object>(
  target: T,
  methods: readonly (keyof T & string)[],
  wrap: (method: string, call: () => Promise<unknown>) => Promise<unknown>,
): T {
  const proxy = Object.create(target) as T;
  for (const method of methods) {
    const original = target[method] as unknown as (...args: unknown[]) => Promise<unknown>;
    (proxy as Record<string, unknown>)[method] = (...args: unknown[]) =>
      wrap(method, () => original.apply(target, args));
  }
  return proxy;
}

export function instrumentBlobStore(store: BlobStore, metrics: Metrics): BlobStore {
  return decorate(store, ['put', 'get', 'exists', 'stat', 'delete', 'list', 'ping'], (op, call) =>
    timed((outcome, s) => metrics.blobs.observe({ operation: op, outcome }, s), call),
  );
}

export function instrumentEnvelope(envelope: Envelope, metrics: Metrics): Envelope {
  return decorate(envelope, ['encrypt', 'decrypt', 'verifyKey'], (op, call) =>
    timed((outcome, s) => metrics.envelope.observe({ operation: op, outcome }, s), call),
  );
}

/** The status label of a Jumio call: bounded, never a reference. */
export function jumioStatus(error: unknown): string {
  if (error === undefined) return '200';
  if (error instanceof JumioNotFoundError) return '404';
  if (error instanceof JumioRateLimitedError) return '429';
  if (
    error instanceof JumioUnauthorizedError ||
    error instanceof JumioUpstreamError ||
    error instanceof JumioRequestRejectedError
  ) {
    return String(error.status);
  }
  if (error instanceof JumioTimeoutError) return 'timeout';
  if (error instanceof JumioNetworkError) return 'network_error';
  if (error instanceof JumioInvalidResponseError) return 'invalid_response';
  if (error instanceof JumioInvalidRequestError) return 'invalid_request';
  return 'error';
}

const JUMIO_ENDPOINTS: Record<string, string> = {
  getScanStatus: 'scan_status',
  getScanDetails: 'scan_details',
  downloadFacemap: 'facemap',
  deleteScan: 'scan_delete',
  initiateAuthentication: 'initiate',
  getAuthentication: 'authentication_retrieval',
  deleteAuthentication: 'authentication_delete',
};

export function instrumentJumio<T extends JumioApi>(jumio: T, metrics: Metrics): T {
  return decorate(jumio, Object.keys(JUMIO_ENDPOINTS) as (keyof T & string)[], async (m, call) => {
    const endpoint = JUMIO_ENDPOINTS[m]!;
    const started = process.hrtime.bigint();
    let failure: unknown;
    try {
      return await call();
    } catch (error) {
      failure = error ?? new Error('unknown');
      throw error;
    } finally {
      const status = jumioStatus(failure);
      metrics.jumio.observe({ endpoint, status }, Number(process.hrtime.bigint() - started) / 1e9);
      metrics.jumioRequests.inc({ endpoint, status });
    }
  });
}

/** Times transactions and counts the audit entries each committed one wrote. */
export function instrumentLedger(ledger: Ledger, metrics: Metrics): Ledger {
  const proxy = Object.create(ledger) as Ledger;
  proxy.transaction = async <T>(fn: (tx: LedgerTx) => Promise<T>): Promise<T> => {
    const events: Array<{ type: string; details?: Record<string, unknown> }> = [];
    const result = await timed(
      (outcome, s) => metrics.ledgerTransactions.observe({ outcome }, s),
      () =>
        ledger.transaction((tx) => {
          const audit = Object.create(tx.audit) as LedgerTx['audit'];
          audit.append = (event) => {
            events.push(event);
            return tx.audit.append(event);
          };
          audit.appendMany = (many) => {
            events.push(...many);
            return tx.audit.appendMany(many);
          };
          audit.record = (event) => {
            events.push(event);
            tx.audit.record(event);
          };
          return fn({ ...tx, audit } as LedgerTx);
        }),
    );
    // Counted only once committed: a rolled-back entry never happened.
    for (const { type, details } of events) {
      metrics.auditEvents.inc({ type });
      const state = details?.state;
      if (type === 'authentication.finalized' && typeof state === 'string') {
        metrics.authentications.inc({ state });
      }
    }
    return result;
  };
  return proxy;
}

/**
 * `/metrics` on its own listener, so it is never exposed where Jumio's callbacks arrive.
 * Resolves once listening; `close()` stops it.
 */
export async function startMetricsServer(
  metrics: Metrics,
  port: number,
  host?: string,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body);
      },
      () => res.writeHead(503).end('metrics unavailable\n'),
    );
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
