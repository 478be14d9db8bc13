import { migrations, runMigrations } from '../../src/adapters/ledger/migrations';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';
import { entryHash, GENESIS_HASH } from '../../src/core/compliance/chain';
import { DependencyError } from '../../src/core/errors';
import { refuseAuditEntries, testDatabaseKinds, type TestDatabase } from '../helpers/ledgers';
import { newEnrollment } from '../helpers/fixtures';
import type { NewAuthentication } from '../../src/core/ports';

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

  it('inserts a group of enrollments in one step, once per reference, and chains a group of entries', async () => {
    const [a, b, known] = [ref('group-a'), ref('group-b'), ref('group-known')];
    const now = new Date();
    await ledger.transaction((tx) => tx.enrollments.insert(newEnrollment(known, now), now));
    await ledger.transaction((tx) =>
      tx.intents.register({ enrollmentReference: a, userReference: 'u-a', registeredBy: 'svc' }),
    );

    const { created, entries, next, intents } = await ledger.transaction(async (tx) => {
      const intents = await tx.intents.getMany([a, b]);
      const created = await tx.enrollments.insertMany(
        [
          newEnrollment(b, now),
          newEnrollment(known, now, { state: 'REJECTED' }),
          newEnrollment(a, now),
        ],
        now,
      );
      const entries = await tx.audit.appendMany(
        [a, b, a].map((enrollmentReference, i) => ({
          type: 'test.group',
          actor: 'jumio',
          enrollmentReference,
          details: { i },
        })),
      );
      const next = await tx.audit.append({ type: 'test.after-group', actor: 'system' });
      return { created, entries, next, intents };
    });

    expect([...created].sort()).toEqual([a, b].sort());
    expect(intents.map((i) => i.enrollmentReference)).toEqual([a]);
    const stored = await ledger.transaction((tx) => tx.enrollments.getMany([a, b, known]));
    expect(stored.map((e) => [e.enrollmentReference, e.state]).sort()).toEqual(
      [
        [a, 'PENDING'],
        [b, 'PENDING'],
        [known, 'PENDING'],
      ].sort(),
    );
    expect(entries.map((e) => e.details)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    for (const [i, e] of [...entries, next].entries()) {
      expect(entryHash(e)).toBe(e.hash);
      if (i > 0) {
        const before = [...entries, next][i - 1]!;
        expect(e.seq).toBe(before.seq + 1);
        expect(e.prevHash).toBe(before.hash);
      }
    }
    expect(await ledger.transaction((tx) => tx.audit.chain(entries[0]!.seq - 1, 4))).toEqual([
      ...entries,
      next,
    ]);
  });

  it('records entries with the transaction: written at commit, chained in the order produced, none on rollback', async () => {
    const enrollmentReference = ref('record');
    const entry = (i: number) => ({
      type: 'test.recorded',
      actor: 'system',
      enrollmentReference,
      details: { i },
    });
    const { appended, seenInside } = await ledger.transaction(async (tx) => {
      tx.audit.record(entry(0));
      // An append writes what was recorded before it first, and returns only its own.
      const appended = await tx.audit.append({ ...entry(1), type: 'test.appended' });
      tx.audit.record(entry(2));
      tx.audit.record(entry(3));
      const seenInside = await tx.audit.list({ enrollmentReference });
      return { appended, seenInside };
    });
    expect(appended.type).toBe('test.appended');
    expect(appended.details).toEqual({ i: 1 });
    expect(seenInside.map((e) => e.details)).toEqual([{ i: 0 }, { i: 1 }]);
    const listed = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
    expect(listed.map((e) => [e.type, e.details])).toEqual([
      ['test.recorded', { i: 0 }],
      ['test.appended', { i: 1 }],
      ['test.recorded', { i: 2 }],
      ['test.recorded', { i: 3 }],
    ]);
    for (const [i, e] of listed.entries()) {
      expect(entryHash(e)).toBe(e.hash);
      if (i > 0) {
        expect(e.seq).toBe(listed[i - 1]!.seq + 1);
        expect(e.prevHash).toBe(listed[i - 1]!.hash);
      }
    }

    const lost = ref('record-lost');
    const boom = new Error('boom');
    await expect(
      ledger.transaction(async (tx) => {
        tx.audit.record({ ...entry(0), enrollmentReference: lost });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await ledger.transaction((tx) => tx.audit.list({ enrollmentReference: lost }))).toEqual(
      [],
    );
  });

  it('fails the whole transaction when a recorded entry cannot be written (fails closed)', async () => {
    const enrollmentReference = ref('record-refused');
    const now = new Date();
    const restore = await refuseAuditEntries(db, 'test.refused');
    try {
      await expect(
        ledger.transaction(async (tx) => {
          await tx.enrollments.insert(newEnrollment(enrollmentReference, now), now);
          tx.audit.record({ type: 'test.refused', actor: 'system', enrollmentReference });
        }),
      ).rejects.toThrow(/audit store refuses/);
    } finally {
      await restore();
    }
    // The change it recorded did not happen either.
    expect(await ledger.transaction((tx) => tx.enrollments.getMany([enrollmentReference]))).toEqual(
      [],
    );
  });

  (_name === 'postgres' ? it : it.skip)(
    'a transaction that recorded an entry does not hold the chain head before its commit',
    async () => {
      const enrollmentReference = ref('record-head');
      let recorded!: () => void;
      const isRecorded = new Promise<void>((r) => (recorded = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const slow = ledger.transaction(async (tx) => {
        tx.audit.record({ type: 'test.slow', actor: 'system', enrollmentReference });
        recorded();
        await released;
      });
      await isRecorded;
      // With `append` in `slow` this would wait for slow's commit, which waits for it.
      const other = await ledger.transaction((tx) =>
        tx.audit.append({ type: 'test.other', actor: 'system', enrollmentReference }),
      );
      release();
      await slow;
      const listed = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
      expect(listed.map((e) => e.type)).toEqual(['test.other', 'test.slow']);
      expect(listed[1]!.seq).toBeGreaterThan(other.seq);
    },
  );

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

  it('refuses to TRUNCATE the audit trail, even for the owner', async () => {
    const enrollmentReference = ref('no-truncate');
    await ledger.transaction((tx) =>
      tx.audit.append({ type: 'test.kept', actor: 'system', enrollmentReference }),
    );
    await expect(db.exec('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
    await expect(db.exec('TRUNCATE audit_events CASCADE')).rejects.toThrow(/append-only/);
    const kept = await ledger.transaction((tx) => tx.audit.list({ enrollmentReference }));
    expect(kept.map((e) => e.type)).toEqual(['test.kept']);
  });

  it('chains entries written before the chain existed, once, and keeps them append-only', async () => {
    const actor = ref('legacy');
    // New entries must be chained; only an owner who lifts that rule can write as before.
    await expect(
      db.query(`INSERT INTO audit_events (type, actor) VALUES ('test.unchained', $1)`, [actor]),
    ).rejects.toThrow(/must be chained/);
    await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_chained');
    try {
      for (const i of [1, 2]) {
        await db.query(
          `INSERT INTO audit_events (type, actor, details) VALUES ('test.legacy', $1, $2::jsonb)`,
          [actor, JSON.stringify({ i })],
        );
      }
    } finally {
      await db.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_chained');
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

  describe('key rotation', () => {
    /** An enrollment holding a blob under `keyId` in `state`. */
    const holdingUnder = async (
      keyId: string,
      state: 'STORED' | 'ACTIVE' | 'PARKED' | 'SUPERSEDED',
    ) => {
      const r = ref();
      await insert(r);
      await ledger.transaction((tx) =>
        tx.enrollments.update(
          r,
          { state, keyId, blobKey: `facemaps/${r}/x.bin`, blobStore: 'file:///b' },
          t0,
          null,
        ),
      );
      return r;
    };

    it('leases facemaps under the given keys one at a time, skipping held, skipped and other rows', async () => {
      const [oldKey, otherKey] = [ref(), ref()];
      const held = [
        await holdingUnder(oldKey, 'STORED'),
        await holdingUnder(oldKey, 'ACTIVE'),
        await holdingUnder(oldKey, 'PARKED'),
      ];
      const superseded = await holdingUnder(oldKey, 'SUPERSEDED');
      const elsewhere = await holdingUnder(otherKey, 'ACTIVE');
      const now = new Date('2030-06-01T00:00:00Z');
      const before = await ledger.transaction((tx) => tx.enrollments.get(held[0]!));
      const lease = (owner: string, skip: string[] = [], at = now) =>
        ledger.transaction((tx) =>
          tx.enrollments.leaseUnderKeys([oldKey], owner, at, 60_000, skip),
        );
      // Two at once get two different rows.
      const [a, b] = await Promise.all([lease('A'), lease('B')]);
      expect(a!.enrollmentReference).not.toBe(b!.enrollmentReference);
      const c = await lease(
        'C',
        [held[0]!, held[1]!, held[2]!].filter(
          (r) => r !== a!.enrollmentReference && r !== b!.enrollmentReference,
        ),
      );
      expect(c).toBeNull();
      const third = await lease('C');
      expect(held).toContain(third!.enrollmentReference);
      expect(await lease('D')).toBeNull();
      // Only the lease columns changed: the row keeps its place in its queue.
      const leased = await ledger.transaction((tx) => tx.enrollments.get(held[0]!));
      expect({ ...leased, leaseOwner: null, leaseUntil: null }).toEqual(before);
      expect(leased!.leaseUntil).toEqual(new Date(now.getTime() + 60_000));
      // A lease that ran out is free again; releasing is the owner's alone.
      expect(
        (await lease('E', [], new Date(now.getTime() + 60_001)))?.enrollmentReference,
      ).toBeDefined();
      const mine = third!.enrollmentReference;
      const release = (owner: string) =>
        ledger.transaction((tx) => tx.enrollments.releaseLease(mine, owner));
      expect(await release('not-C')).toBe(false);
      expect(await release('C')).toBe(true);
      expect(await ledger.transaction((tx) => tx.enrollments.get(mine))).toMatchObject({
        leaseOwner: null,
        leaseUntil: null,
      });
      for (const r of [superseded, elsewhere]) {
        const row = await ledger.transaction((tx) => tx.enrollments.get(r));
        expect(row!.leaseOwner).toBeNull();
      }
      expect(
        await ledger.transaction((tx) => tx.enrollments.leaseUnderKeys([], 'F', now, 1000, [])),
      ).toBeNull();
      // One facemap per key for the doctor; counts per key for the inventory and /v1/keys.
      expect(
        (await ledger.transaction((tx) => tx.enrollments.findUnderKey(otherKey)))!
          .enrollmentReference,
      ).toBe(elsewhere);
      expect(await ledger.transaction((tx) => tx.enrollments.findUnderKey(ref()))).toBeNull();
      const byKey = await ledger.transaction((tx) => tx.inventory.facemapsByKey());
      expect(byKey).toEqual(
        expect.arrayContaining([
          { keyId: oldKey, facemaps: 3 },
          { keyId: otherKey, facemaps: 1 },
        ]),
      );
    });

    it('keeps each vault key with its wrapping key, replaces it, and records an unknown key once', async () => {
      const name = ref();
      await ledger.transaction((tx) =>
        tx.vaultKeys.putIfAbsent(name, new Uint8Array([1]), 'key-1'),
      );
      const got = await ledger.transaction((tx) => tx.vaultKeys.get(name));
      expect(got).toMatchObject({ name, keyId: 'key-1', updatedAt: null });
      expect(Array.from(got!.ciphertext)).toEqual([1]);
      const at = new Date('2030-01-01Z');
      await ledger.transaction((tx) =>
        tx.vaultKeys.replace(name, new Uint8Array([2]), 'key-2', at),
      );
      const replaced = await ledger.transaction((tx) =>
        tx.vaultKeys.get(name, { forUpdate: true }),
      );
      expect(replaced).toMatchObject({ keyId: 'key-2', updatedAt: at });
      expect(Array.from(replaced!.ciphertext)).toEqual([2]);
      expect((await ledger.transaction((tx) => tx.vaultKeys.list())).map((k) => k.name)).toContain(
        name,
      );
      // A key written before keys were recorded: recorded once, never overwritten.
      const legacy = ref();
      await ledger.transaction((tx) => tx.vaultKeys.putIfAbsent(legacy, new Uint8Array([3])));
      expect((await ledger.transaction((tx) => tx.vaultKeys.get(legacy)))!.keyId).toBeNull();
      await ledger.transaction((tx) => tx.vaultKeys.recordKeyId(legacy, 'found'));
      await ledger.transaction((tx) => tx.vaultKeys.recordKeyId(legacy, 'other'));
      await ledger.transaction((tx) => tx.vaultKeys.recordKeyId(name, 'other'));
      expect((await ledger.transaction((tx) => tx.vaultKeys.get(legacy)))!.keyId).toBe('found');
      expect((await ledger.transaction((tx) => tx.vaultKeys.get(name)))!.keyId).toBe('key-2');
      expect(await ledger.transaction((tx) => tx.vaultKeys.get(ref()))).toBeNull();
    });

    it('tells whether an initiate holds the mark of an enrollment', async () => {
      const r = ref();
      await insert(r);
      const now = new Date('2030-02-01T00:00:00Z');
      const live = (at: Date) =>
        ledger.transaction((tx) => tx.authentications.initiationLive(r, at));
      expect(await live(now)).toBe(false);
      await ledger.transaction((tx) => tx.authentications.claimInitiation(r, 'I', now, 30_000));
      expect(await live(now)).toBe(true);
      expect(await live(new Date(now.getTime() + 30_000))).toBe(false);
      await ledger.transaction((tx) => tx.authentications.releaseInitiation(r, 'I'));
      expect(await live(now)).toBe(false);
    });
  });

  it('keeps the last interaction of an enrollment', async () => {
    const r = ref();
    await insert(r);
    const at = new Date('2026-03-01T10:00:00.123Z');
    await ledger.transaction((tx) => tx.enrollments.update(r, { lastInteractionAt: at }, t0, null));
    expect((await ledger.transaction((tx) => tx.enrollments.get(r)))!.lastInteractionAt).toEqual(
      at,
    );
  });

  describe('authentications', () => {
    const authenticationOf = (
      enrollmentReference: string,
      createdAt: Date,
      overrides: Partial<NewAuthentication> = {},
    ): NewAuthentication => ({
      authenticationReference: ref(),
      enrollmentReference,
      userReference: `u-${enrollmentReference}`,
      state: 'INITIATED',
      purpose: 'login step-up',
      requestedBy: 'login-svc',
      redirectUrl: 'https://jumio.example/web?t=x',
      notifyUrl: null,
      expiresAt: new Date(createdAt.getTime() + 15 * 60_000),
      nextAttemptAt: new Date(createdAt.getTime() + 17 * 60_000),
      ...overrides,
    });
    const add = (a: NewAuthentication, at: Date) =>
      ledger.transaction((tx) => tx.authentications.insert(a, at));

    it('stores, reads, patches and pages authentications newest first', async () => {
      const e = ref();
      await insert(e);
      const times = [0, 1, 2].map((i) => new Date(t0.getTime() + i * 1000));
      const created = times.map((at) => authenticationOf(e, at));
      for (const [i, a] of created.entries()) await add(a, times[i]!);
      const first = created[0]!;
      expect(
        await ledger.transaction((tx) => tx.authentications.get(first.authenticationReference)),
      ).toMatchObject({
        ...first,
        reason: null,
        source: null,
        finalizedAt: null,
        jumioDeletedAt: null,
        attempts: 0,
        createdAt: times[0],
      });
      const done = new Date('2026-01-01T00:10:00Z');
      await ledger.transaction((tx) =>
        tx.authentications.update(
          first.authenticationReference,
          { state: 'PASSED', source: 'callback', finalizedAt: done },
          done,
        ),
      );
      const userReference = `u-${e}`;
      const page1 = await ledger.transaction((tx) =>
        tx.authentications.list({ userReference, limit: 2 }),
      );
      expect(page1.map((a) => a.authenticationReference)).toEqual([
        created[2]!.authenticationReference,
        created[1]!.authenticationReference,
      ]);
      const last = page1.at(-1)!;
      const page2 = await ledger.transaction((tx) =>
        tx.authentications.list({
          userReference,
          limit: 2,
          after: { createdAt: last.createdAt, key: last.authenticationReference },
        }),
      );
      expect(page2).toEqual([
        expect.objectContaining({ state: 'PASSED', source: 'callback', finalizedAt: done }),
      ]);
      const passed = await ledger.transaction((tx) =>
        tx.authentications.list({ userReference, state: 'PASSED', limit: 10 }),
      );
      expect(passed).toHaveLength(1);
      const counted = await ledger.transaction((tx) =>
        tx.authentications.countSince(userReference, times[0]!),
      );
      expect(counted).toEqual({ count: 2, oldest: times[1] });
    });

    it('lists the INITIATED authentications of an enrollment still within their 15 minutes', async () => {
      const e = ref();
      await insert(e);
      const old = authenticationOf(e, new Date(t0.getTime() - 20 * 60_000));
      const live = authenticationOf(e, t0);
      const final = authenticationOf(e, t0, { state: 'FAILED' });
      for (const a of [old, live, final]) await add(a, t0);
      const found = await ledger.transaction((tx) =>
        tx.authentications.listLive(e, new Date(t0.getTime() + 60_000)),
      );
      expect(found.map((a) => a.authenticationReference)).toEqual([live.authenticationReference]);
    });

    it('lets one initiate per enrollment be in flight, until its mark expires', async () => {
      const e = ref();
      const claim = (owner: string, at: Date) =>
        ledger.transaction((tx) => tx.authentications.claimInitiation(e, owner, at, 60_000));
      const results = await Promise.all(['a', 'b', 'c', 'd'].map((o) => claim(o, t0)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const holder = ['a', 'b', 'c', 'd'][results.indexOf(true)]!;
      expect(await claim('x', new Date(t0.getTime() + 59_000))).toBe(false);
      expect(await claim('x', new Date(t0.getTime() + 60_000))).toBe(true);
      // The first holder's release no longer removes anyone's mark.
      const release = (owner: string) =>
        ledger.transaction((tx) => tx.authentications.releaseInitiation(e, owner));
      expect(await release(holder)).toBe(false);
      expect(await release('x')).toBe(true);
      expect(await claim('y', t0)).toBe(true);
    });

    it('leases due authentications on their own queue', async () => {
      const e = ref();
      await insert(e);
      const due = authenticationOf(e, t0, { nextAttemptAt: new Date('1990-01-01Z') });
      const idle = authenticationOf(e, t0, { state: 'PASSED', nextAttemptAt: null });
      await add(due, t0);
      await add(idle, t0);
      const claimed: string[] = [];
      for (;;) {
        const key = await ledger.transaction((tx) =>
          tx.queues.claim('authentications', 'W', new Date('1991-01-01Z'), 60_000),
        );
        if (key === null) break;
        claimed.push(key);
      }
      expect(claimed).toEqual([due.authenticationReference]);
    });

    // PostgreSQL only: PGlite has one connection, so its transactions never interleave.
    (_name === 'postgres' ? it : it.skip)(
      'an authentication written twice after the audit chain head does not deadlock with a locked enrollment',
      async () => {
        // Updating a row this transaction already wrote re-checks its foreign key, which
        // locks the enrollment row (KEY SHARE) after the chain head. With enrollments
        // locked FOR UPDATE that waited on a transaction holding the enrollment and waiting
        // for the head: PostgreSQL reported a deadlock (the bench's 50 concurrent initiates).
        const e = ref();
        await insert(e);
        const a = authenticationOf(e, t0);
        await add(a, t0);
        let enrollmentLocked!: () => void;
        const locked = new Promise<void>((r) => (enrollmentLocked = r));
        let headTaken!: () => void;
        const head = new Promise<void>((r) => (headTaken = r));
        const holder = ledger.transaction(async (tx) => {
          await tx.enrollments.get(e, { forUpdate: true });
          enrollmentLocked();
          await head;
          await tx.audit.append({
            type: 'test.holder',
            actor: 'system',
            enrollmentReference: e,
            details: {},
          });
        });
        await locked;
        const worker = ledger.transaction(async (tx) => {
          await tx.authentications.update(a.authenticationReference, { state: 'EXPIRED' }, t0);
          await tx.audit.append({
            type: 'test.worker',
            actor: 'system',
            enrollmentReference: e,
            details: {},
          });
          headTaken();
          // Let the holder queue on the chain head first.
          await new Promise((r) => setTimeout(r, 300));
          await tx.queues.settle(
            'authentications',
            a.authenticationReference,
            { attempts: 1, nextAttemptAt: null, lastError: null },
            t0,
          );
        });
        await expect(Promise.all([holder, worker])).resolves.toBeDefined();
      },
    );
  });

  describe('idempotency keys', () => {
    const day = 24 * 3_600_000;
    const input = (key: string, requestSha256 = 'h1') => ({
      apiKeyName: 'svc',
      key,
      requestSha256,
    });

    it('starts one request per key, keeps its answer, and forgets it after expiry', async () => {
      const key = ref();
      const begun = await Promise.all(
        [1, 2, 3, 4].map(() =>
          ledger.transaction((tx) => tx.idempotency.begin(input(key), t0, day)),
        ),
      );
      expect(begun.filter((b) => b.created)).toHaveLength(1);
      expect(begun.every((b) => b.record.response === null)).toBe(true);
      await ledger.transaction((tx) => tx.idempotency.complete('svc', key, { answer: 1 }));
      const again = await ledger.transaction((tx) =>
        tx.idempotency.begin(input(key, 'h2'), new Date(t0.getTime() + day - 1), day),
      );
      expect(again).toMatchObject({
        created: false,
        record: { requestSha256: 'h1', response: { answer: 1 } },
      });
      // A completed record is not released; an expired one is replaced.
      await ledger.transaction((tx) => tx.idempotency.release('svc', key));
      const later = new Date(t0.getTime() + day);
      const fresh = await ledger.transaction((tx) =>
        tx.idempotency.begin(input(key, 'h2'), later, day),
      );
      expect(fresh).toMatchObject({
        created: true,
        record: { requestSha256: 'h2', response: null },
      });
      await ledger.transaction((tx) => tx.idempotency.release('svc', key));
      expect(
        (await ledger.transaction((tx) => tx.idempotency.begin(input(key, 'h3'), later, day)))
          .created,
      ).toBe(true);
    });

    it('purges expired keys in bounded batches', async () => {
      const far = new Date('2060-01-01Z');
      const keys = [ref(), ref(), ref()];
      for (const key of keys) {
        await ledger.transaction((tx) => tx.idempotency.begin(input(key), far, 1000));
      }
      const later = new Date(far.getTime() + 1000);
      const purged = await ledger.transaction((tx) => tx.idempotency.purgeExpired(later, 2));
      expect(purged).toBe(2);
      expect(
        await ledger.transaction((tx) => tx.idempotency.purgeExpired(later, 100)),
      ).toBeGreaterThanOrEqual(1);
      expect(await ledger.transaction((tx) => tx.idempotency.purgeExpired(later, 100))).toBe(0);
    });
  });

  it('keeps notifications in an outbox queue, oldest first', async () => {
    const authenticationReference = ref();
    const ids = [ref(), ref()];
    for (const [i, id] of ids.entries()) {
      await ledger.transaction((tx) =>
        tx.notifications.insert(
          {
            id,
            type: 'authentication.finalized',
            authenticationReference,
            url: 'https://hooks.example/x',
            payload: '{"type":"authentication.finalized"}',
            deliverUntil: new Date('2026-01-02Z'),
            nextAttemptAt: new Date('1990-01-01Z'),
          },
          new Date(t0.getTime() + i),
        ),
      );
    }
    const listed = await ledger.transaction((tx) =>
      tx.notifications.list({ authenticationReference, limit: 10 }),
    );
    expect(listed.map((n) => [n.id, n.state, n.attempts])).toEqual([
      [ids[0], 'PENDING', 0],
      [ids[1], 'PENDING', 0],
    ]);
    await ledger.transaction((tx) =>
      tx.notifications.update(
        ids[0]!,
        { state: 'FAILED', lastStatus: 500, nextAttemptAt: null },
        t0,
      ),
    );
    const failed = await ledger.transaction((tx) =>
      tx.notifications.list({ authenticationReference, state: 'FAILED', limit: 10 }),
    );
    expect(failed).toEqual([expect.objectContaining({ id: ids[0], lastStatus: 500 })]);
    const next = await ledger.transaction((tx) =>
      tx.notifications.list({
        authenticationReference,
        limit: 10,
        after: { createdAt: listed[0]!.createdAt, key: ids[0]! },
      }),
    );
    expect(next.map((n) => n.id)).toEqual([ids[1]]);
    const key = await ledger.transaction((tx) =>
      tx.queues.claim('notifications', 'W', new Date('1991-01-01Z'), 60_000),
    );
    expect(key).toBe(ids[1]);
  });
});
