/**
 * Soak: five minutes of mixed load on one vault process (callbacks of new onboardings at a
 * rate its pipeline keeps up with, reads by user and by scan, authentications started for
 * stored facemaps) while its /metrics is sampled. After the first minute (warm-up: pools,
 * JIT, caches), the resident set and the heap must show no upward trend beyond the bounds
 * below (least-squares slope over the last four minutes). The event-loop delay is sampled
 * and its trend reported against a stated bound, not asserted: on a shared machine it
 * measures the neighbours as much as the vault.
 */
import { report, type RunningVault, type Stack, startStack, startVault, TOKENS } from './harness';

const SOAK_MS = Number(process.env.RESILIENCE_SOAK_MS ?? 300_000);
const WARM_UP_MS = Math.min(60_000, SOAK_MS / 5);
const SAMPLE_MS = 5_000;
/** The bounds, per minute of load. */
const MAX_RSS_MB_PER_MIN = 10;
const MAX_HEAP_MB_PER_MIN = 5;
const MAX_LOOP_DELAY_MS_PER_MIN = 20;
/** Load: a tick every 100 ms (reads), a callback and an authentication every 10th. */
const TICK_MS = 100;
const MAX_IN_FLIGHT = 24;

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  loopP99Ms: number;
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) throw new Error(`/metrics has no ${name}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    min: round(sorted[0] ?? 0),
    median: round(sorted[Math.floor(sorted.length / 2)] ?? 0),
    max: round(sorted.at(-1) ?? 0),
  };
};

describe('soak', () => {
  let stack: Stack;
  let vault: RunningVault;

  beforeAll(async () => {
    stack = await startStack();
    vault = await startVault(stack, {
      AUTH_MAX_PER_USER_PER_HOUR: '100000',
      WORKER_CONCURRENCY: '4',
    });
  });

  afterAll(async () => {
    await vault?.kill();
    await stack?.dispose();
  });

  it('shows no upward trend in memory or event-loop delay under mixed load', async () => {
    const started = Date.now();
    const users: Array<{ scanReference: string; customerId: string; at: number }> = [];
    const counts: Record<string, number> = {};
    const count = (kind: string, status: number | string) => {
      const key = `${kind} ${status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    };
    const api = async (kind: string, path: string, init: RequestInit = {}) => {
      const res = await fetch(`${vault.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${TOKENS.admin}`, ...init.headers },
        signal: AbortSignal.timeout(30_000),
      }).catch((error: unknown) => ({
        status: `error ${(error as Error).name}`,
        text: async () => '',
      }));
      await res.text();
      count(kind, res.status);
    };
    const pick = () => users[Math.floor(Math.random() * users.length)];

    let inFlight = 0;
    let tick = 0;
    const work: Array<() => Promise<void>> = [
      async () => {
        const scan = await stack.sim.createScan({ facemapBytes: 2048 });
        const customerId = (await stack.sim.scan(scan.scanReference)).customerId ?? '';
        const sent = await stack.sim
          .sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`)
          .catch(() => ({ status: null }));
        count('callback', sent.status ?? 'error');
        if (sent.status === 200) {
          users.push({ scanReference: scan.scanReference, customerId, at: Date.now() });
        }
      },
      async () => {
        const u = pick();
        if (u) await api('read by user', `/v1/enrollments/${encodeURIComponent(u.customerId)}`);
      },
      async () => {
        const u = pick();
        if (u) await api('read by scan', `/v1/enrollments/by-scan/${u.scanReference}`);
      },
    ];
    const authenticate = async () => {
      // An onboarding of a while ago: its facemap is stored by now (else 409).
      const settled = users.filter((x) => Date.now() - x.at > 30_000);
      const u = settled[Math.floor(Math.random() * settled.length)];
      if (!u) return;
      await api('authentication', '/v1/authentications', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userReference: u.customerId, purpose: 'soak test step-up' }),
      });
    };

    const samples: Sample[] = [];
    const load = setInterval(() => {
      tick += 1;
      const [callback, ...reads] = work;
      const jobs = [...reads, ...(tick % 10 === 0 ? [callback!, authenticate] : [])];
      for (const job of jobs) {
        if (inFlight >= MAX_IN_FLIGHT) {
          count('skipped (in flight)', MAX_IN_FLIGHT);
          continue;
        }
        inFlight += 1;
        void job()
          .catch(() => count('load error', 'thrown'))
          .finally(() => (inFlight -= 1));
      }
    }, TICK_MS);
    try {
      while (Date.now() - started < SOAK_MS) {
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
        const text = await (await fetch(vault.metricsUrl)).text();
        samples.push({
          t: (Date.now() - started) / 60_000,
          rssMb: metric(text, 'vault_process_resident_memory_bytes') / 2 ** 20,
          heapMb: metric(text, 'vault_nodejs_heap_size_used_bytes') / 2 ** 20,
          loopP99Ms: metric(text, 'vault_nodejs_eventloop_lag_p99_seconds') * 1000,
        });
      }
    } finally {
      clearInterval(load);
    }
    // Let the last requests finish (bounded) before counting them.
    for (let i = 0; i < 300 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 100));

    const measured = samples.filter((s) => s.t * 60_000 >= WARM_UP_MS);
    const trend = {
      rssMbPerMin: slope(measured.map((s) => [s.t, s.rssMb])),
      heapMbPerMin: slope(measured.map((s) => [s.t, s.heapMb])),
      loopP99MsPerMin: slope(measured.map((s) => [s.t, s.loopP99Ms])),
    };
    const states = await stack.sql<{ state: string; n: string }>(
      'SELECT state, count(*) AS n FROM enrollments GROUP BY state',
    );
    report('soak', {
      minutes: Math.round(SOAK_MS / 6000) / 10,
      samples: samples.length,
      requests: counts,
      enrollments: Object.fromEntries(states.map((s) => [s.state, Number(s.n)])),
      rssMb: stats(measured.map((s) => s.rssMb)),
      heapMb: stats(measured.map((s) => s.heapMb)),
      loopP99Ms: stats(measured.map((s) => s.loopP99Ms)),
      trendPerMinute: Object.fromEntries(
        Object.entries(trend).map(([k, v]) => [k, Math.round(v * 100) / 100]),
      ),
      loopTrendWithinBound: trend.loopP99MsPerMin < MAX_LOOP_DELAY_MS_PER_MIN,
      bounds: {
        rssMbPerMin: MAX_RSS_MB_PER_MIN,
        heapMbPerMin: MAX_HEAP_MB_PER_MIN,
        loopP99MsPerMin: MAX_LOOP_DELAY_MS_PER_MIN,
      },
    });

    expect(vault.process.child.exitCode).toBeNull();
    expect(measured.length).toBeGreaterThanOrEqual(5);
    // The load really ran: callbacks acknowledged and reads answered.
    expect(counts['callback 200'] ?? 0).toBeGreaterThan(SOAK_MS / 2000);
    expect(counts['read by scan 200'] ?? 0).toBeGreaterThan(100);
    expect(Object.keys(counts).filter((k) => / 5\d\d$|error/.test(k))).toEqual([]);
    expect(trend.rssMbPerMin).toBeLessThan(MAX_RSS_MB_PER_MIN);
    expect(trend.heapMbPerMin).toBeLessThan(MAX_HEAP_MB_PER_MIN);
  });
});
