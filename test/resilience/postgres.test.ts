/**
 * PostgreSQL away: the vault reaches its database through a TCP proxy that is shut (open
 * connections cut, in the middle of transactions and while idle; new ones refused) for a
 * while, then opened again. Meanwhile callbacks must get 503, never 200, and /readyz must
 * name the ledger; afterwards the same process serves and finishes every onboarding.
 */
import {
  createOnboardings,
  deliverUntilAcknowledged,
  outcome,
  pool,
  type RefusingProxy,
  report,
  type RunningVault,
  settle,
  type Stack,
  startRefusingProxy,
  startStack,
  startVault,
} from './harness';

const AWAY_MS = 12_000;

describe('PostgreSQL away', () => {
  let stack: Stack;
  let proxy: RefusingProxy;
  let vault: RunningVault;

  beforeAll(async () => {
    stack = await startStack();
    const target = new URL(stack.databaseUrl);
    proxy = await startRefusingProxy(Number(target.port || 5432));
    target.host = `127.0.0.1:${proxy.port}`;
    vault = await startVault(stack, {
      DATABASE_URL: target.toString(),
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      WORKER_CONCURRENCY: '4',
      // A row claimed just before the database went keeps its lease: nothing else can be
      // written while it is away. It comes back when the lease expires (production: 5 min).
      WORKER_LEASE_MS: '5000',
    });
  });

  afterAll(async () => {
    await vault?.kill();
    await proxy?.close();
    await stack?.dispose();
  });

  it('answers 503 while the ledger is away, says so on /readyz, and recovers without a restart', async () => {
    const started = Date.now();
    const onboardings = await createOnboardings(stack.sim, 80);
    const before = onboardings.slice(0, 40);
    const during = onboardings.slice(40);
    const pid = vault.process.child.pid;
    const alive = () =>
      vault.process.child.exitCode === null && vault.process.child.signalCode === null;
    // Work in flight when the database goes: the pipeline is busy with these.
    await pool(before, 8, (o) =>
      deliverUntilAcknowledged(stack.sim, o.scanReference, () => [vault.url]),
    );

    const attempts: Array<{ sentAt: number; doneAt: number; status: number | null }> = [];
    const probes: Array<{ sentAt: number; doneAt: number; status: number; ledger: unknown }> = [];
    let downAt = Infinity;
    let upAt = Infinity;
    // Jumio keeps calling back (each attempt logged), and a monitor keeps probing /readyz.
    const deliveries = pool(during, during.length, async (o) => {
      // Spread over the outage, so that callbacks arrive all through it.
      await new Promise((r) => setTimeout(r, Math.random() * AWAY_MS));
      for (;;) {
        const sentAt = Date.now();
        const sent = await stack.sim
          .sendCallback(o.scanReference, `${vault.url}/webhooks/jumio`)
          .catch(() => ({ status: null }));
        attempts.push({ sentAt, doneAt: Date.now(), status: sent.status });
        if (sent.status === 200) return;
        if (!alive() || Date.now() - started > 240_000) {
          throw new Error(
            `no 200 for ${o.scanReference}; vault stderr: ${vault.process.stderr().slice(-3000)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    });
    let probing = true;
    const monitor = (async () => {
      while (probing && alive()) {
        const sentAt = Date.now();
        const res = await fetch(`${vault.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
        const body = (await res.json()) as { checks?: { ledger?: unknown } };
        probes.push({
          sentAt,
          doneAt: Date.now(),
          status: res.status,
          ledger: body.checks?.ledger,
        });
        await new Promise((r) => setTimeout(r, 300));
      }
    })();

    await new Promise((r) => setTimeout(r, 500 + Math.random() * 1500));
    await proxy.down();
    downAt = Date.now();
    await new Promise((r) => setTimeout(r, AWAY_MS));
    upAt = Date.now();
    await proxy.up();
    await deliveries.catch(async (error: unknown) => {
      probing = false;
      await monitor.catch(() => undefined);
      throw error;
    });
    await settle(
      async () => (await fetch(`${vault.url}/readyz`)).status,
      (s) => s === 200,
      60_000,
    );
    probing = false;
    await monitor;

    const final = await settle(
      () => outcome(stack, onboardings),
      (s) =>
        s.rows.size === onboardings.length &&
        [...s.rows.values()].every((r) => r.state === 'ACTIVE' || r.state === 'REJECTED'),
      180_000,
    );

    const away = attempts.filter((a) => a.sentAt > downAt && a.doneAt < upAt);
    const awayProbes = probes.filter((p) => p.sentAt > downAt && p.doneAt < upAt);
    const count = (xs: Array<{ status: unknown }>) =>
      xs.reduce<Record<string, number>>(
        (m, x) => ({ ...m, [String(x.status)]: (m[String(x.status)] ?? 0) + 1 }),
        {},
      );
    const states: Record<string, number> = {};
    for (const r of final.rows.values()) states[r.state] = (states[r.state] ?? 0) + 1;
    report('PostgreSQL away', {
      awayMs: upAt - downAt,
      callbacksWhileAway: count(away),
      readyzWhileAway: count(awayProbes),
      ledgerCheckWhileAway: [...new Set(awayProbes.map((p) => p.ledger))],
      firstAcknowledgedAfterUpMs:
        Math.min(
          ...attempts.filter((a) => a.status === 200 && a.sentAt >= upAt).map((a) => a.doneAt),
        ) - upAt,
      states,
      samePid: vault.process.child.pid === pid && vault.process.child.exitCode === null,
      seconds: Math.round((Date.now() - started) / 1000),
    });

    // The same process, never restarted.
    expect(vault.process.child.exitCode).toBeNull();
    expect(vault.process.child.signalCode).toBeNull();
    expect(vault.process.child.pid).toBe(pid);
    // While away: 503 to every callback, not one 200; /readyz 503 naming the ledger.
    expect(away.length).toBeGreaterThan(5);
    expect(away.map((a) => a.status).filter((s) => s !== 503)).toEqual([]);
    expect(awayProbes.length).toBeGreaterThan(5);
    expect(
      awayProbes.map((p) => [p.status, p.ledger]).filter(([s, l]) => s !== 503 || l !== 'failed'),
    ).toEqual([]);
    // Afterwards: nothing lost.
    for (const o of onboardings) {
      const row = final.rows.get(o.scanReference);
      expect({ ref: o.scanReference, state: row?.state }).toEqual({
        ref: o.scanReference,
        state: o.eligible ? 'ACTIVE' : 'REJECTED',
      });
      if (o.eligible) expect(final.storedAudits.get(o.scanReference)).toBe(1);
    }
  });
});
