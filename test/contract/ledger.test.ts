import { migrations, runMigrations } from '../../src/adapters/ledger/migrations';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';
import { DependencyError } from '../../src/core/errors';
import { testDatabaseKinds, type TestDatabase } from '../helpers/ledgers';

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
