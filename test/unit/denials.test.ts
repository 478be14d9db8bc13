import { runMigrations } from '../../src/adapters/ledger/migrations';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import { DenialAggregator, type Denial } from '../../src/core/denials';
import { systemClock, type AuditEvent, type Ledger } from '../../src/core/ports';
import { captureLogs } from '../helpers/logs';
import { waitFor } from '../helpers/process';

describe('DenialAggregator', () => {
  let db: PgliteDatabase;
  let ledger: SqlLedger;
  let seenIds = 0;

  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await runMigrations(db);
    ledger = new SqlLedger(db);
  });
  afterAll(async () => {
    await db.close();
  });

  /** Audit entries appended since the previous call. */
  async function fresh(): Promise<AuditEvent[]> {
    const all = await ledger.transaction((tx) =>
      tx.audit.list({ afterId: seenIds, limit: 10_000 }),
    );
    seenIds = all.at(-1)?.id ?? seenIds;
    return all;
  }

  const denial = (overrides: Partial<Denial> = {}): Denial => ({
    type: 'request.denied',
    sourceAddress: '198.51.100.7',
    reason: 'missing_token',
    status: 401,
    path: '/v1/enrollments/x',
    ...overrides,
  });

  const aggregator = (l: Ledger = ledger, maxKeys?: number, intervalMs = 3_600_000) =>
    new DenialAggregator(
      { ledger: l, clock: systemClock, logger: captureLogs().logger },
      { intervalMs, ...(maxKeys === undefined ? {} : { maxKeys }) },
    );

  beforeEach(async () => {
    await fresh();
  });

  it('writes one entry per key, with the count, first and last seen, and nothing when idle', async () => {
    const a = aggregator();
    for (let i = 0; i < 7; i++) a.record(denial({ requestId: `r-${i}` }));
    a.record(denial({ sourceAddress: '203.0.113.1' }));
    a.record(denial({ status: 403, reason: 'role_not_allowed', caller: 'svc-a' }));
    expect(await fresh()).toEqual([]);
    expect(await a.flush()).toBe(3);
    const written = await fresh();
    expect(written.map((e) => [e.actor, e.details.sourceAddress, e.details.count])).toEqual([
      ['anonymous', '198.51.100.7', 7],
      ['anonymous', '203.0.113.1', 1],
      ['svc-a', '198.51.100.7', 1],
    ]);
    expect(written[0]!.details).toMatchObject({ lastRequestId: 'r-6', reason: 'missing_token' });
    expect(Date.parse(String(written[0]!.details.firstSeen))).toBeLessThanOrEqual(
      Date.parse(String(written[0]!.details.lastSeen)),
    );
    // A new interval starts empty.
    expect(await a.flush()).toBe(0);
    expect(await fresh()).toEqual([]);
  });

  it('caps distinct keys: beyond the cap, denials count in one overflow entry per type', async () => {
    const a = aggregator(ledger, 3);
    for (let i = 0; i < 10; i++) a.record(denial({ sourceAddress: `192.0.2.${i}` }));
    a.record(denial({ type: 'callback.refused', reason: 'source_not_allowed', status: 403 }));
    expect(a.pendingKeys).toBe(5);
    await a.flush();
    const written = await fresh();
    expect(written.filter((e) => !e.details.overflow)).toHaveLength(3);
    const overflow = written.filter((e) => e.details.overflow === true);
    expect(overflow.map((e) => [e.type, e.details.count, e.details.sourceAddress])).toEqual([
      ['request.denied', 7, null],
      ['callback.refused', 1, null],
    ]);
    expect(written.reduce((n, e) => n + Number(e.details.count), 0)).toBe(11);
  });

  it('keeps the counts when the ledger fails, and writes them with the next flush', async () => {
    let fail = true;
    const flaky: Ledger = {
      transaction: (fn) =>
        fail ? Promise.reject(new Error('ledger down')) : ledger.transaction(fn),
      ping: () => ledger.ping(),
      close: async () => undefined,
    };
    const a = aggregator(flaky);
    a.record(denial());
    a.record(denial());
    await expect(a.flush()).rejects.toThrow('ledger down');
    a.record(denial());
    fail = false;
    expect(await a.flush()).toBe(1);
    const [entry] = await fresh();
    expect(entry!.details.count).toBe(3);
  });

  it('flushes on its timer, and at close()', async () => {
    const timed = aggregator(ledger, undefined, 50);
    timed.start();
    timed.record(denial({ reason: 'unknown_token' }));
    const [entry] = await waitFor(async () => {
      const got = await fresh();
      return got.length > 0 ? got : undefined;
    });
    expect(entry!.details).toMatchObject({ reason: 'unknown_token', count: 1, intervalMs: 50 });
    await timed.close();

    const closing = aggregator();
    closing.start();
    closing.record(denial({ type: 'callback.unreadable', reason: 'empty_body', status: 400 }));
    await closing.close();
    const [last] = await fresh();
    expect(last).toMatchObject({ type: 'callback.unreadable', actor: 'unknown' });
    expect(last!.details).toMatchObject({ reason: 'empty_body', count: 1 });
  });
});
