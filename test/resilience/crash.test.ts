/**
 * Crash anywhere: two vaults on one PostgreSQL and one s3rver take 500 onboardings, a
 * quarter of the callbacks delivered two or three times at once, while one vault is
 * SIGKILLed at random moments and restarted, five times. Afterwards the ledger, the bucket,
 * the audit trail and the simulator must agree exactly (invariants 1-4 and 10).
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

const ONBOARDINGS = Number(process.env.RESILIENCE_ONBOARDINGS ?? 500);
const KILLS = 5;
// Short leases and sweeps so that a killed vault's rows and strays come back within the run
// (production defaults: 5 min lease, 1 h sweep and grace).
const ENV = {
  WORKER_LEASE_MS: '4000',
  ORPHAN_SWEEP_INTERVAL_MS: '2000',
  ORPHAN_SWEEP_GRACE_MS: '6000',
  WORKER_CONCURRENCY: '4',
};

describe('crash anywhere', () => {
  let stack: Stack;
  const vaults: Array<RunningVault | undefined> = [];

  beforeAll(async () => {
    stack = await startStack();
    // One after the other: the first start generates the shared local key and signing key.
    vaults[0] = await startVault(stack, ENV);
    vaults[1] = await startVault(stack, ENV);
  });

  afterAll(async () => {
    for (const v of vaults) await v?.kill();
    await stack?.dispose();
  });

  it('loses nothing and duplicates nothing', async () => {
    const started = Date.now();
    const onboardings = await createOnboardings(stack.sim, ONBOARDINGS);
    const urls = [vaults[0]!.url, vaults[1]!.url];

    // Jumio's side: each callback retried until some vault answers 200; 20% sent twice and
    // 5% three times, the copies at once.
    let deliveries = 0;
    let refusedOrFailed = 0;
    const delivering = pool(onboardings, 16, async (o) => {
      const r = Math.random();
      const copies = r < 0.05 ? 3 : r < 0.25 ? 2 : 1;
      const sent = await Promise.all(
        Array.from({ length: copies }, () =>
          deliverUntilAcknowledged(stack.sim, o.scanReference, () => urls),
        ),
      );
      deliveries += copies;
      refusedOrFailed += sent.reduce((n, s) => n + s.tries - 1, 0);
    });

    // Meanwhile: SIGKILL the second vault at random moments, restart it on its port.
    const kills: number[] = [];
    const killing = (async () => {
      for (let k = 0; k < KILLS; k++) {
        await new Promise((r) => setTimeout(r, 1500 + Math.random() * 5000));
        await vaults[1]!.kill();
        kills.push(Date.now() - started);
        await new Promise((r) => setTimeout(r, Math.random() * 1000));
        vaults[1] = await startVault(stack, ENV, Number(new URL(urls[1]!).port));
      }
    })();
    await Promise.all([delivering, killing]);

    const eligible = onboardings.filter((o) => o.eligible);
    // The pipeline finishes, the sweep removes strays of killed store attempts: bounded wait.
    const final = await settle(
      async () => ({ ...(await outcome(stack, onboardings)), objects: await stack.objects() }),
      (s) =>
        [...s.rows.values()].filter((r) => r.state === 'ACTIVE').length === eligible.length &&
        [...s.rows.values()].every((r) => r.state === 'ACTIVE' || r.state === 'REJECTED') &&
        s.objects.length === eligible.length,
      180_000,
    );

    const states: Record<string, number> = {};
    for (const r of final.rows.values()) states[r.state] = (states[r.state] ?? 0) + 1;
    const blobKeys = new Set(
      [...final.rows.values()].flatMap((r) => (r.blob_key ? [r.blob_key] : [])),
    );
    const orphans = final.objects.filter((k) => !blobKeys.has(k));
    const scans = await pool(onboardings, 16, (o) => stack.sim.scan(o.scanReference));
    report('crash anywhere', {
      onboardings: onboardings.length,
      eligible: eligible.length,
      deliveries,
      retriedDeliveries: refusedOrFailed,
      killsAtMs: kills,
      states,
      objects: final.objects.length,
      orphans: orphans.length,
      seconds: Math.round((Date.now() - started) / 1000),
    });

    expect(kills).toHaveLength(KILLS);
    expect(final.rows.size).toBe(onboardings.length);
    onboardings.forEach((o, i) => {
      const row = final.rows.get(o.scanReference);
      const scan = scans[i]!;
      if (o.eligible) {
        expect({ ref: o.scanReference, state: row?.state }).toEqual({
          ref: o.scanReference,
          state: 'ACTIVE',
        });
        expect(row?.facemap_bytes).toBe(o.facemapBytes);
        expect(final.storedAudits.get(o.scanReference)).toBe(1);
        expect(scan.deleted).toBe(true);
      } else {
        expect({ ref: o.scanReference, state: row?.state }).toEqual({
          ref: o.scanReference,
          state: 'REJECTED',
        });
        expect(final.storedAudits.get(o.scanReference)).toBeUndefined();
        expect(scan.facemapDownloads).toBe(0);
      }
    });
    // Exactly one object per ACTIVE facemap, and no other.
    expect(final.objects.length).toBe(eligible.length);
    expect(orphans).toEqual([]);
    expect(new Set(final.objects).size).toBe(eligible.length);
  });
});
