/**
 * End to end: onboardings from callback to ACTIVE (simulator, fs blobs, local key) with one
 * vault process, then with two on the same PostgreSQL database.
 */
import { performance } from 'node:perf_hooks';
import {
  benchDatabase,
  callbackTemplate,
  createScans,
  FORM,
  load,
  machineBusy,
  round,
  startSimulatorProcess,
  startVault,
  using,
  type BenchOptions,
  type Row,
  type RunningVault,
  type ScenarioResult,
} from './lib';

/** Onboards `count` users through `processes` vaults; enrollments/s from first callback. */
async function onboard(options: BenchOptions, count: number, processes: number, workers: number) {
  return using(async (defer) => {
    const sim = await startSimulatorProcess();
    defer(sim.stop);
    const db = await benchDatabase(options.databaseUrl);
    defer(db.drop);
    const refs = await createScans(sim.url, count);
    const template = callbackTemplate(sim.url);
    const vaults: RunningVault[] = [];
    for (let i = 0; i < processes; i++) {
      // One at a time: the first one migrates the database. They share its data directory
      // (the fs blob store and the local key), as replicas share a bucket and a KMS key.
      const vault = await startVault({
        sim,
        databaseUrl: db.url,
        ...(vaults[0] ? { dataDir: vaults[0].dataDir } : {}),
        env: { WORKER_CONCURRENCY: String(workers), ENROLLMENT_WORKER_INTERVAL_MS: '100' },
      });
      defer(vault.stop);
      vaults.push(vault);
    }
    const started = performance.now();
    const busy = machineBusy();
    // The callbacks are split between the processes, as a load balancer would.
    const callbacks = Promise.all(
      vaults.map((vault, i) => {
        const mine = refs.filter((_, n) => n % processes === i);
        let next = 0;
        return load({
          url: `${vault.url}/webhooks/jumio`,
          connections: 8,
          amount: mine.length,
          headers: FORM,
          body: () => template.body(mine[next++]),
        });
      }),
    );
    const callbackResults = await callbacks;
    const acknowledgedMs = performance.now() - started;
    const limitMs = Math.max(120_000, count * 200);
    let counts = { active: 0, other: 0 };
    for (;;) {
      const [row] = await db.query<{ active: string; other: string }>(
        `SELECT count(*) FILTER (WHERE state = 'ACTIVE') AS active,
                count(*) FILTER (WHERE state NOT IN ('ACTIVE', 'PENDING', 'STORED')) AS other
           FROM enrollments`,
      );
      counts = { active: Number(row!.active), other: Number(row!.other) };
      if (counts.active + counts.other >= count) break;
      if (performance.now() - started > limitMs) {
        throw new Error(`only ${counts.active} of ${count} ACTIVE after ${limitMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      seconds,
      machineBusyPercent: busy.stop(),
      acknowledgedMs,
      ...counts,
      failedCallbacks: callbackResults.reduce((n, r) => n + r.non2xx + r.errors, 0),
    };
  });
}

export async function endToEnd(options: BenchOptions): Promise<ScenarioResult> {
  const count = options.quick ? 50 : 2000;
  const workers = 2; // WORKER_CONCURRENCY's default
  const rows: Row[] = [];
  const rates: number[] = [];
  for (const processes of [1, 2]) {
    const r = await onboard(options, count, processes, workers);
    const rate = round(r.active / r.seconds);
    rates.push(rate);
    rows.push({
      case: `${processes} vault process${processes > 1 ? 'es' : ''}`,
      baseline: processes === 1,
      throughput: rate,
      unit: 'enrollments/s',
      ratio: round(rate / rates[0]!, 2),
      onboardings: count,
      active: r.active,
      notActive: r.other,
      seconds: round(r.seconds, 1),
      callbacksAcknowledgedInS: round(r.acknowledgedMs / 1000, 1),
      failedCallbacks: r.failedCallbacks,
      machineBusyPercent: r.machineBusyPercent,
    });
  }
  const ratio = round(rates[1]! / rates[0]!, 2);
  return {
    id: 'end-to-end',
    title: `End to end: ${count} onboardings, callback to ACTIVE`,
    method:
      `${count} eligible scans created at the simulator (its own process), then their ` +
      'callbacks sent to the vault (8 connections per process, split evenly), and the time ' +
      'from the first callback until every enrollment is ACTIVE (polled in PostgreSQL every ' +
      `100 ms). Each vault: the built process, fs blobs, local key, WORKER_CONCURRENCY=${workers} ` +
      '(the default), workers polling every 100 ms. 1 process, then 2 processes on one ' +
      'fresh PostgreSQL database each time; the simulator, PostgreSQL and the load generator ' +
      'share the same cores. Machine busy: the share of all cores busy (any process) from the ' +
      'first callback to the last ACTIVE, from /proc/stat.',
    rows,
    targets: [{ target: '2 processes >= 1.6x one', measured: `${ratio}x`, met: ratio >= 1.6 }],
  };
}
