/**
 * Jumio misbehaves: about 30% of calls answered 5xx, 5% hang, 5% of facemap downloads cut
 * in half, and a spell of 429 with Retry-After. Every eligible onboarding must still end
 * ACTIVE, no facemap may be stored from a truncated download, and no call may reach Jumio
 * while a Retry-After it sent is running.
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

const ONBOARDINGS = 80;
const RETRY_AFTER_S = 3;
/** A call already on its way when the 429 left the simulator may still arrive after it. */
const IN_FLIGHT_SLACK_MS = 500;

describe('Jumio misbehaves', () => {
  let stack: Stack;
  let vault: RunningVault;

  beforeAll(async () => {
    stack = await startStack();
    vault = await startVault(stack, {
      // A hung call is abandoned after 3 s (production: 60 s).
      JUMIO_REQUEST_DEADLINE_MS: '3000',
      WORKER_CONCURRENCY: '6',
    });
  });

  afterAll(async () => {
    await vault?.kill();
    await stack?.dispose();
  });

  it('ends every eligible onboarding ACTIVE, never stores a truncated facemap, honours Retry-After', async () => {
    const started = Date.now();
    const onboardings = await createOnboardings(stack.sim, ONBOARDINGS);
    const { sim } = stack;
    const hits: Record<string, number> = {};
    const countHits = async () => {
      const { faults } = await sim.control<{
        faults: Array<{ kind: string; status: number; hits: number }>;
      }>('GET', 'faults');
      for (const f of faults) {
        const name = f.kind === 'status' ? String(f.status) : f.kind;
        hits[name] = (hits[name] ?? 0) + f.hits;
      }
      await sim.clearFaults();
    };
    // Checked in creation order; a call a fault's dice spare goes on to the next one.
    const misbehave = async () => {
      await sim.fault({ endpoint: 'facemap', kind: 'truncated', probability: 0.05 });
      await sim.fault({ endpoint: '*', kind: 'hang', probability: 0.05 });
      await sim.fault({ endpoint: '*', kind: 'status', status: 500, probability: 0.15 });
      await sim.fault({ endpoint: '*', kind: 'status', status: 503, probability: 0.18 });
    };
    await misbehave();

    const delivering = pool(onboardings, 8, (o) =>
      deliverUntilAcknowledged(sim, o.scanReference, () => [vault.url]),
    );
    // A spell of rate limiting while the pipeline is busy: first in line, for 8 calls.
    await new Promise((r) => setTimeout(r, 3000));
    await countHits();
    await sim.fault({
      endpoint: '*',
      kind: 'status',
      status: 429,
      retryAfter: RETRY_AFTER_S,
      probability: 0.5,
      times: 8,
    });
    await misbehave();
    await delivering;

    const eligible = onboardings.filter((o) => o.eligible);
    const final = await settle(
      () => outcome(stack, onboardings),
      (s) => [...s.rows.values()].every((r) => r.state === 'ACTIVE' || r.state === 'REJECTED'),
      300_000,
    );
    await countHits();

    const log = await sim.requests();
    const times = log.map((r) => ({
      ...r,
      at: Date.parse((r as unknown as { time: string }).time),
    }));
    const limited = times.filter((r) => r.status === 429);
    const tooSoon = limited.flatMap((l) =>
      times.filter((r) => r.at > l.at + IN_FLIGHT_SLACK_MS && r.at < l.at + RETRY_AFTER_S * 1000),
    );
    const statuses: Record<string, number> = {};
    for (const r of log) statuses[String(r.status)] = (statuses[String(r.status)] ?? 0) + 1;
    const states: Record<string, number> = {};
    for (const r of final.rows.values()) states[r.state] = (states[r.state] ?? 0) + 1;
    report('Jumio misbehaves', {
      onboardings: onboardings.length,
      eligible: eligible.length,
      jumioCalls: log.length,
      jumioStatuses: statuses,
      facemapDownloads: log.filter((r) => r.endpoint === 'facemap').length,
      faultsInjected: hits,
      rateLimited: limited.length,
      callsInsideRetryAfter: tooSoon.length,
      states,
      seconds: Math.round((Date.now() - started) / 1000),
    });

    expect(limited.length).toBeGreaterThan(0);
    expect(hits.truncated).toBeGreaterThan(0);
    expect(log.some((r) => r.status === 500 || r.status === 503)).toBe(true);
    expect(tooSoon).toEqual([]);
    for (const o of onboardings) {
      const row = final.rows.get(o.scanReference);
      if (o.eligible) {
        expect({ ref: o.scanReference, state: row?.state }).toEqual({
          ref: o.scanReference,
          state: 'ACTIVE',
        });
        // A facemap stored from half a download would be half the size the scan has.
        expect(row?.facemap_bytes).toBe(o.facemapBytes);
        expect(final.storedAudits.get(o.scanReference)).toBe(1);
      } else {
        expect(row?.state).toBe('REJECTED');
      }
    }
  });
});
