/**
 * S3 away: s3rver is killed while the pipeline is busy and started again on the same port
 * and directory later. Callbacks must keep being acknowledged (they only touch the ledger),
 * nothing may be lost, and the pipeline must pick up by itself.
 *
 * The outage lasts RESILIENCE_S3_AWAY_MS (default 60 s, as the issue asks): what is checked
 * does not change with the length, only how many backoff rounds the store step spends,
 * and the whole suite must stay under ten minutes on a shared two-core machine.
 */
import {
  createOnboardings,
  deliverUntilAcknowledged,
  outcome,
  pool,
  report,
  type RunningVault,
  settle,
  type Stack,
  startStack,
  startVault,
} from './harness';

const AWAY_MS = Number(process.env.RESILIENCE_S3_AWAY_MS ?? 60_000);

describe('S3 away', () => {
  let stack: Stack;
  let vault: RunningVault;

  beforeAll(async () => {
    stack = await startStack();
    vault = await startVault(stack, {
      WORKER_CONCURRENCY: '4',
      WORKER_LEASE_MS: '4000',
      ORPHAN_SWEEP_INTERVAL_MS: '2000',
      ORPHAN_SWEEP_GRACE_MS: '6000',
    });
  });

  afterAll(async () => {
    await vault?.kill();
    await stack?.dispose();
  });

  it('keeps acknowledging callbacks, loses nothing, and resumes by itself', async () => {
    const started = Date.now();
    const onboardings = await createOnboardings(stack.sim, 60);
    const before = onboardings.slice(0, 30);
    const during = onboardings.slice(30);
    const deliver = (o: (typeof onboardings)[number]) =>
      deliverUntilAcknowledged(stack.sim, o.scanReference, () => [vault.url]);
    await pool(before, 8, deliver);

    await stack.s3.kill();
    const downAt = Date.now();
    // Every callback of the outage acknowledged on its first delivery.
    const sent = await pool(during, during.length, async (o) => {
      await new Promise((r) => setTimeout(r, Math.random() * (AWAY_MS / 2)));
      return deliver(o);
    });
    const readyz = await fetch(`${vault.url}/readyz`);
    const readyzBody = (await readyz.json()) as { checks?: Record<string, string> };
    const backlog = await outcome(stack, onboardings);
    await new Promise((r) => setTimeout(r, Math.max(0, downAt + AWAY_MS - Date.now())));
    await stack.s3.restart();
    const upAt = Date.now();

    const eligible = onboardings.filter((o) => o.eligible);
    const final = await settle(
      async () => ({ ...(await outcome(stack, onboardings)), objects: await stack.objects() }),
      (s) =>
        s.rows.size === onboardings.length &&
        [...s.rows.values()].every((r) => r.state === 'ACTIVE' || r.state === 'REJECTED') &&
        s.objects.length === eligible.length,
      240_000,
    );
    const states: Record<string, number> = {};
    for (const r of final.rows.values()) states[r.state] = (states[r.state] ?? 0) + 1;
    const waiting = [...backlog.rows.values()].filter(
      (r) => r.state !== 'ACTIVE' && r.state !== 'REJECTED',
    ).length;
    const blobKeys = new Set(
      [...final.rows.values()].flatMap((r) => (r.blob_key ? [r.blob_key] : [])),
    );
    report('S3 away', {
      awayMs: upAt - downAt,
      callbacksDuringOutage: sent.length,
      deliveriesNeeded: sent.reduce((n, s) => n + s.tries, 0),
      readyzDuringOutage: { status: readyz.status, checks: readyzBody.checks },
      unfinishedDuringOutage: waiting,
      states,
      objects: final.objects.length,
      settledAfterUpMs: Date.now() - upAt,
      seconds: Math.round((Date.now() - started) / 1000),
    });

    expect(sent.map((s) => s.statuses)).toEqual(sent.map(() => [200]));
    expect(readyz.status).toBe(503);
    expect(['failed', 'timeout']).toContain(readyzBody.checks?.blobs);
    // The outage really held work back.
    expect(waiting).toBeGreaterThan(0);
    for (const o of onboardings) {
      const row = final.rows.get(o.scanReference);
      expect({ ref: o.scanReference, state: row?.state }).toEqual({
        ref: o.scanReference,
        state: o.eligible ? 'ACTIVE' : 'REJECTED',
      });
      if (o.eligible) expect(row?.facemap_bytes).toBe(o.facemapBytes);
    }
    expect([...final.objects].sort()).toEqual([...blobKeys].sort());
  });
});
