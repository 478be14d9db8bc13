import { migrations, runMigrations } from '../../src/adapters/ledger/migrations';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';
import { entryHash, GENESIS_HASH } from '../../src/core/compliance/chain';
import { DependencyError } from '../../src/core/errors';
import { testDatabaseKinds, type TestDatabase } from '../helpers/ledgers';
import { newEnrollment } from '../helpers/fixtures';

const latest = Math.max(...migrations.map((m) => m.version));

describe.each(testDatabaseKinds)('Ledger contract on %s', (_name, create) => {
  let testDb: TestDatabase;
  let db: SqlDatabase;
  let ledger: SqlLedger;
  // Each test isolates itself by its own references, not by a new database.
  let seq = 0;
  const ref = (label: string) => `${label}-${process.pid}-${++seq}-${Date.now()}`;

  beforeAll(async () => {
    testDb = await create();
    db = await testDb.open();
    ledger = new SqlLedger(db);
  });
  afterAll(async () => {
    await testDb.dispose();
  });

  it('applies every migration once when several replicas start at the same time', async () => {
    const replicas = await Promise.all([testDb.open(), testDb.open(), testDb.open()]);
    const results = await Promise.all(replicas.map((r) => runMigrations(r)));
    const applied = results.flat().sort((a, b) => a - b);
    expect(applied).toEqual(migrations.map((m) => m.version).sort((a, b) => a - b));
    const { rows } = await db.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => Number(r.version))).toEqual(applied);
  });

  it('is idempotent: running the migrations again applies nothing', async () => {
    expect(await runMigrations(db)).toEqual([]);
    expect(await runMigrations(db)).toEqual([]);
    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n, max(version) AS v FROM schema_migrations',
    );
    expect(Number(rows[0]!.n)).toBe(migrations.length);
    expect(latest).toBeGreaterThanOrEqual(1);
  });

  it('commits a transaction and makes its writes visible', async () => {
    const enrollmentReference = ref('commit');
    const event = await ledger.transaction((tx) =>
      tx.audit.append({
        type: 'test.committed',
        actor: 'system',
        enrollmentReference,
        details: { n: 1 },
      }),
    );
    expect(event.id).toBeGreaterThan(0);
    expect(event.at).toBeInstanceOf(Date);
    const listed = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
    expect(listed).toEqual([event]);
    expect(listed[0]!.details).toEqual({ n: 1 });
  });

  it('rolls back every write of a transaction that throws, and rethrows', async () => {
    const enrollmentReference = ref('rollback');
    const boom = new Error('boom');
    await expect(
      ledger.transaction(async (tx) => {
        await tx.audit.append({ type: 'test.lost', actor: 'system', enrollmentReference });
        throw boom;
      }),
    ).rejects.toBe(boom);
    const listed = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
    expect(listed).toEqual([]);
  });

  it('runs concurrent transactions without losing writes', async () => {
    const userReference = ref('concurrent');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ledger.transaction((tx) =>
          tx.audit.append({ type: 'test.concurrent', actor: `a${i}`, userReference }),
        ),
      ),
    );
    const listed = await ledger.transaction((tx) => tx.audit.list({ userReference, limit: 100 }));
    expect(listed.map((e) => e.actor).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `a${i}`).sort(),
    );
  });

  it('pages the audit trail by id', async () => {
    const userReference = ref('paging');
    for (let i = 0; i < 5; i++) {
      await ledger.transaction((tx) =>
        tx.audit.append({ type: 'test.page', actor: 'system', userReference, details: { i } }),
      );
    }
    const first = await ledger.transaction((tx) => tx.audit.list({ userReference, limit: 2 }));
    const rest = await ledger.transaction((tx) =>
      tx.audit.list({ userReference, afterId: first[1]!.id, limit: 10 }),
    );
    expect([...first, ...rest].map((e) => e.details.i)).toEqual([0, 1, 2, 3, 4]);
  });

  it('refuses to update or delete audit events', async () => {
    const enrollmentReference = ref('append-only');
    const event = await ledger.transaction((tx) =>
      tx.audit.append({ type: 'test.kept', actor: 'system', enrollmentReference }),
    );
    await expect(
      db.query(`UPDATE audit_events SET type = 'forged' WHERE id = $1`, [event.id]),
    ).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM audit_events WHERE id = $1', [event.id])).rejects.toThrow(
      /append-only/,
    );
    const [kept] = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
    expect(kept!.type).toBe('test.kept');
  });

  it('chains entries written before the chain existed, once, and keeps them append-only', async () => {
    const actor = ref('legacy');
    for (const i of [1, 2]) {
      await db.query(
        `INSERT INTO audit_events (type, actor, details) VALUES ('test.legacy', $1, $2::jsonb)`,
        [actor, JSON.stringify({ i })],
      );
    }
    // Sealing changes nothing but the seal columns: anything else is still refused.
    await expect(
      db.query(
        `UPDATE audit_events SET seq = 999999, hash = 'x', actor = 'forged' WHERE actor = $1`,
        [actor],
      ),
    ).rejects.toThrow(/append-only/);
    const [sealed, again] = await Promise.all([
      ledger.transaction((tx) => tx.audit.sealUnchained()),
      ledger.transaction((tx) => tx.audit.sealUnchained()),
    ]);
    expect(sealed + again).toBe(2);
    const all = await ledger.transaction((tx) => tx.audit.chain(0, 100_000));
    const head = await ledger.transaction((tx) => tx.audit.head());
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    all.forEach((e, i) => {
      expect(e.prevHash).toBe(i === 0 ? GENESIS_HASH : all[i - 1]!.hash);
      expect(entryHash(e)).toBe(e.hash);
    });
    expect(head).toEqual({ seq: all.length, hash: all.at(-1)!.hash });
    const legacy = all.filter((e) => e.actor === actor);
    expect(legacy.map((e) => e.details.i)).toEqual([1, 2]);
    await expect(
      db.query(`UPDATE audit_events SET hash = 'x' WHERE seq = $1`, [legacy[0]!.seq]),
    ).rejects.toThrow(/append-only/);
  });

  it('allows at most one ACTIVE enrollment per user reference', async () => {
    const userReference = ref('user');
    const insert = (enrollmentReference: string, state: string) =>
      db.query(
        `INSERT INTO enrollments (enrollment_reference, user_reference, state) VALUES ($1, $2, $3)`,
        [enrollmentReference, userReference, state],
      );
    await insert(ref('e'), 'ACTIVE');
    await insert(ref('e'), 'SUPERSEDED');
    await expect(insert(ref('e'), 'ACTIVE')).rejects.toThrow(/enrollments_one_active_per_user/);
    await expect(insert(ref('e'), 'NOT_A_STATE')).rejects.toThrow(/check constraint/);
  });

  it('answers ping while open', async () => {
    await expect(ledger.ping()).resolves.toBeUndefined();
  });

  // Last: it closes the shared database.
  it('names the ledger as the failed dependency once the database is gone', async () => {
    await ledger.close();
    await expect(ledger.ping()).rejects.toBeInstanceOf(DependencyError);
    await expect(ledger.ping()).rejects.toThrow(/ledger/);
  });
});

describe.each(testDatabaseKinds)('Enrollment repository on %s', (_name, create) => {
  let testDb: TestDatabase;
  let ledger: SqlLedger;
  let seq = 0;
  const ref = () => `e${process.pid}${++seq}${Date.now()}`.slice(0, 36);
  const t0 = new Date('2026-01-01T00:00:00Z');

  beforeAll(async () => {
    testDb = await create();
    const db = await testDb.open();
    await runMigrations(db);
    ledger = new SqlLedger(db);
  });
  afterAll(() => testDb.dispose());

  const insert = (enrollmentReference: string, userReference = `u-${enrollmentReference}`) =>
    ledger.transaction((tx) =>
      tx.enrollments.insert(newEnrollment(enrollmentReference, t0, { userReference }), t0),
    );

  it('inserts once per scan reference', async () => {
    const r = ref();
    const results = await Promise.all(Array.from({ length: 10 }, () => insert(r)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const got = await ledger.transaction((tx) => tx.enrollments.get(r));
    expect(got).toMatchObject({ enrollmentReference: r, state: 'PENDING', attempts: 0 });
    expect(got!.createdAt).toEqual(t0);
  });

  /** Claims until the queue has nothing due for `owner` at `now`; the keys claimed. */
  const claimAll = async (owner: string, now: Date, leaseMs = 60_000) => {
    const keys: string[] = [];
    for (;;) {
      const key = await ledger.transaction((tx) =>
        tx.queues.claim('enrollments', owner, now, leaseMs),
      );
      if (key === null) return keys;
      keys.push(key);
    }
  };

  it('leases each due row to one worker at a time and honours lease expiry', async () => {
    const r = ref();
    await insert(r);
    const far = new Date('2030-01-01T00:00:00Z');
    const [a, b] = await Promise.all([claimAll('A', far), claimAll('B', far)]);
    expect([...a, ...b].filter((k) => k === r)).toHaveLength(1);
    const owner = a.includes(r) ? 'A' : 'B';
    // Still leased a second later; free again after the lease ran out.
    expect(await claimAll('C', new Date(far.getTime() + 1000))).not.toContain(r);
    expect(await claimAll('C', new Date(far.getTime() + 60_001))).toContain(r);
    // The first owner lost its lease: the fence says so, and the holder's check passes.
    const holds = (who: string) =>
      ledger.transaction((tx) => tx.queues.holds('enrollments', r, who));
    expect(await holds(owner)).toBe(false);
    expect(await holds('C')).toBe(true);
    // Settling releases the lease and schedules the row.
    const later = new Date('2031-01-01T00:00:00Z');
    await ledger.transaction((tx) =>
      tx.queues.settle(
        'enrollments',
        r,
        { attempts: 3, nextAttemptAt: later, lastError: 'x' },
        far,
      ),
    );
    expect(await ledger.transaction((tx) => tx.enrollments.get(r))).toMatchObject({
      state: 'PENDING',
      attempts: 3,
      lastError: 'x',
      nextAttemptAt: later,
      leaseOwner: null,
      leaseUntil: null,
    });
    expect(await claimAll('D', far)).not.toContain(r);
    expect(await claimAll('D', later)).toContain(r);
  });

  it('claims the longest-waiting row first', async () => {
    const [older, newer] = [ref(), ref()];
    await insert(newer);
    await insert(older);
    await ledger.transaction(async (tx) => {
      await tx.enrollments.update(older, { nextAttemptAt: new Date('2027-01-01Z') }, t0, null);
      await tx.enrollments.update(newer, { nextAttemptAt: new Date('2027-01-02Z') }, t0, null);
    });
    const claimed = await claimAll('E', new Date('2040-01-01Z'));
    expect(claimed.indexOf(older)).toBeLessThan(claimed.indexOf(newer));
    expect(claimed.indexOf(older)).toBeGreaterThanOrEqual(0);
  });

  it('does not claim rows that are not due or are final', async () => {
    const later = ref();
    const done = ref();
    await insert(later);
    await insert(done);
    await ledger.transaction(async (tx) => {
      await tx.enrollments.update(later, { nextAttemptAt: new Date('2031-01-01Z') }, t0, null);
      await tx.enrollments.update(done, { state: 'REJECTED' }, t0, null);
    });
    const refs = await claimAll('D', new Date('2030-06-01Z'), 1000);
    expect(refs).not.toContain(later);
    expect(refs).not.toContain(done);
  });

  it('counts due and leased rows and dates the oldest due one', async () => {
    const at = new Date('2035-01-01T12:00:00Z');
    const stats = () => ledger.transaction((tx) => tx.queues.stats('enrollments', at));
    // Other tests' rows share the table: compare the difference these rows make.
    const before = await stats();
    const [waiting, leased, later] = [ref(), ref(), ref()];
    for (const r of [waiting, leased, later]) await insert(r);
    const oldest = new Date('1999-01-01Z');
    await ledger.transaction(async (tx) => {
      await tx.enrollments.update(waiting, { nextAttemptAt: oldest }, t0, null);
      await tx.enrollments.update(
        leased,
        { nextAttemptAt: oldest, leaseOwner: 'L', leaseUntil: new Date('2035-01-02Z') },
        t0,
        null,
      );
      await tx.enrollments.update(later, { nextAttemptAt: new Date('2036-01-01Z') }, t0, null);
    });
    const after = await stats();
    expect(after.due - before.due).toBe(1);
    expect(after.leased - before.leased).toBe(1);
    expect(after.oldestDueAt).toEqual(oldest);
  });

  it('reads several enrollments at once', async () => {
    const [x, y] = [ref(), ref()];
    await insert(x);
    await insert(y);
    const got = await ledger.transaction((tx) => tx.enrollments.getMany([x, y, 'absent']));
    expect(got.map((e) => e.enrollmentReference).sort()).toEqual([x, y].sort());
    expect(await ledger.transaction((tx) => tx.enrollments.getMany([]))).toEqual([]);
  });

  it('keeps periodic tasks once, with their progress', async () => {
    const name = `task-${ref()}`;
    const first = new Date('2026-02-01Z');
    await Promise.all(
      [1, 2, 3].map(() => ledger.transaction((tx) => tx.schedules.ensure(name, first))),
    );
    expect(await ledger.transaction((tx) => tx.schedules.get(name))).toMatchObject({
      name,
      attempts: 0,
      nextAttemptAt: first,
      progress: {},
      lastCompletedAt: null,
    });
    const done = new Date('2026-02-02Z');
    await ledger.transaction((tx) => tx.schedules.saveProgress(name, { cursor: 'c1' }, null));
    await ledger.transaction((tx) => tx.schedules.saveProgress(name, {}, done));
    await ledger.transaction((tx) => tx.schedules.saveProgress(name, { cursor: 'c2' }, null));
    expect(await ledger.transaction((tx) => tx.schedules.get(name))).toMatchObject({
      progress: { cursor: 'c2' },
      lastCompletedAt: done,
    });
  });

  it('keeps the user hash key once, whoever writes first', async () => {
    const [a, b] = await Promise.all([
      ledger.transaction((tx) => tx.vaultKeys.putIfAbsent('k-test', new Uint8Array([1, 2]))),
      ledger.transaction((tx) => tx.vaultKeys.putIfAbsent('k-test', new Uint8Array([3, 4]))),
    ]);
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});
