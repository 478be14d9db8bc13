import { entryHash } from '../../src/core/compliance/chain';
import type { Ledger } from '../../src/core/ports';
import { dbOf } from '../helpers/compliance';
import { waitFor } from '../helpers/process';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';

/**
 * Group commit of ID verification callbacks (issue 11): callbacks arriving together are
 * committed in one transaction, each answered 200 only after it. Commits are held back by
 * a gate until every callback of a round waits, so the grouping does not depend on timing.
 */
describe.each(vaultLedgerKinds)('callback group commit on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledgerChoice: LedgerChoice;
  let vault: TestVault;
  let gate: Promise<void> | undefined;

  const holdCommits = (ledger: Ledger): Ledger => {
    const held = Object.create(ledger) as Ledger;
    held.transaction = async (fn) => {
      await gate;
      return ledger.transaction(fn);
    };
    return held;
  };

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledgerChoice = await chooseLedger();
    vault = await startTestVault(sim, ledgerChoice, { overrides: { wrapLedger: holdCommits } });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledgerChoice?.dispose();
    await sim?.running.close();
    if (vault) await removeDir(vault.dataDir);
  });

  const callbackUrl = () => `${vault.url}/webhooks/jumio`;

  /** Delivers `refs` (repeats allowed) at once, released together; their HTTP statuses. */
  async function deliverTogether(refs: string[]): Promise<Array<number | null>> {
    let open!: () => void;
    gate = new Promise<void>((resolve) => (open = resolve));
    const deliveries = refs.map((ref) => sim.sendCallback(ref, callbackUrl()));
    // Every callback read and waiting for its commit: then the commits may run.
    await waitFor(async () =>
      vault.container.callbackIntake!.pending === refs.length ? true : undefined,
    );
    open();
    gate = undefined;
    return (await Promise.all(deliveries)).map((d) => d.status);
  }

  /** The transactions that wrote these enrollments (PostgreSQL's xmin: the inserting one). */
  async function writers(refs: string[]): Promise<{ rows: number; transactions: number }> {
    const { rows } = await dbOf(vault).query<{ rows: number; transactions: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT xmin::text)::int AS transactions
         FROM enrollments WHERE enrollment_reference = ANY($1::text[])`,
      [refs],
    );
    return rows[0]!;
  }

  it('commits concurrent callbacks in fewer transactions than requests, each durable once answered', async () => {
    const scans = [];
    for (let i = 0; i < 30; i++) scans.push(await sim.createScan());
    const refs = scans.map((s) => s.scanReference);

    const statuses = await deliverTogether(refs);

    expect(statuses).toEqual(refs.map(() => 200));
    const written = await writers(refs);
    expect(written.rows).toBe(refs.length);
    expect(written.transactions).toBeLessThan(refs.length / 2);
    const audit = await dbOf(vault).query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events
        WHERE type = 'enrollment.received' AND enrollment_reference = ANY($1::text[])`,
      [refs],
    );
    expect(audit.rows[0]!.n).toBe(refs.length);

    // Durable: a vault started afresh on the same ledger finds every answered callback.
    await vault.stop();
    vault = await startTestVault(
      sim,
      ledgerChoice,
      { overrides: { wrapLedger: holdCommits } },
      vault.dataDir,
    );
    const found = await vault.container.ledger.transaction((tx) => tx.enrollments.getMany(refs));
    expect(found.map((e) => e.enrollmentReference).sort()).toEqual([...refs].sort());
    expect(found.every((e) => e.state === 'PENDING')).toBe(true);
    // The chain still verifies across grouped appends.
    const verify = await vault.container.ledger.transaction((tx) => tx.audit.chain(0, 10_000));
    expect(verify.length).toBeGreaterThanOrEqual(refs.length);
    for (let i = 1; i < verify.length; i++) {
      expect(verify[i]!.seq).toBe(verify[i - 1]!.seq + 1);
      expect(verify[i]!.prevHash).toBe(verify[i - 1]!.hash);
      expect(entryHash(verify[i]!)).toBe(verify[i]!.hash);
    }
  });

  it('records a callback repeated inside one group and across groups once, with one audit entry', async () => {
    const { scanReference: ref } = await sim.createScan();
    const other = await sim.createScan();

    const statuses = await deliverTogether([ref, ref, other.scanReference, ref, ref]);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const again = await deliverTogether([ref, ref]);
    expect(again).toEqual([200, 200]);

    expect(await writers([ref])).toEqual({ rows: 1, transactions: 1 });
    const entries = await vault.container.ledger.transaction((tx) =>
      tx.audit.list({ enrollmentReference: ref }),
    );
    expect(entries.map((e) => e.type)).toEqual(['enrollment.received']);
  });

  it('answers 5xx to every callback of a group whose commit fails, and stores none of them', async () => {
    const db = dbOf(vault);
    // A deferred constraint trigger fails the COMMIT itself, after every statement succeeded.
    await db.exec(`
      CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$;
      CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON enrollments
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit();
    `);
    try {
      const refs = [];
      for (let i = 0; i < 8; i++) refs.push((await sim.createScan()).scanReference);

      const statuses = await deliverTogether(refs);

      for (const status of statuses) expect(status).toBeGreaterThanOrEqual(500);
      expect((await writers(refs)).rows).toBe(0);
    } finally {
      await db.exec(`
        DROP TRIGGER test_fail_commit ON enrollments;
        DROP FUNCTION test_fail_commit();
      `);
    }
  });
});
