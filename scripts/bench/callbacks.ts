/**
 * Callback scenarios: how fast the vault acknowledges eligible NETVERIFYID callbacks (the
 * durable commit included) next to a bare Express app parsing the same body, and whether
 * its latency holds while the pipeline behind it is stalled.
 */
import {
  benchDatabase,
  callbackTemplate,
  createScans,
  FORM,
  measuredLoad,
  load,
  round,
  sampleMemory,
  simControl,
  startBareExpress,
  startSimulatorProcess,
  startVault,
  using,
  type BenchOptions,
  type Row,
  type ScenarioResult,
} from './lib';

const CONNECTIONS = 64;

function phases(options: BenchOptions) {
  return {
    warmup: options.quick ? 1 : 3,
    seconds: options.seconds ?? (options.quick ? 3 : 20),
  };
}

/** Callback acknowledgement on one ledger vs the bare handler, in the same run. */
export async function callbackAck(
  ledger: 'pglite' | 'postgres',
  options: BenchOptions,
): Promise<ScenarioResult> {
  const { warmup, seconds } = phases(options);
  return using(async (defer) => {
    const sim = await startSimulatorProcess();
    defer(sim.stop);
    const template = callbackTemplate(sim.url);
    const rows: Row[] = [];

    const bare = await startBareExpress();
    defer(bare.stop);
    const bareMemory = sampleMemory(bare.pid);
    const base = await measuredLoad(
      'bare Express 5, urlencoded parse, 200',
      {
        url: `${bare.url}/webhooks/jumio`,
        connections: CONNECTIONS,
        seconds,
        headers: FORM,
        body: () => template.body(),
      },
      warmup,
      undefined,
      bare.pid,
    );
    rows.push({ ...base.row, baseline: true, ratio: 1, peakRssMb: bareMemory.stop().peakMb });
    await bare.stop();

    let databaseUrl: string | undefined;
    if (ledger === 'postgres') {
      const db = await benchDatabase(options.databaseUrl);
      defer(db.drop);
      databaseUrl = db.url;
    }
    // Workers idle: they poll once an hour, so only the acknowledgement path runs.
    const vault = await startVault({
      sim,
      ...(databaseUrl ? { databaseUrl } : {}),
      env: { ENROLLMENT_WORKER_INTERVAL_MS: '3600000' },
    });
    defer(vault.stop);
    const memory = sampleMemory(vault.pid);
    const measured = await measuredLoad(
      `vault on ${ledger === 'pglite' ? 'PGlite' : 'PostgreSQL'}, committed, 200`,
      {
        url: `${vault.url}/webhooks/jumio`,
        connections: CONNECTIONS,
        seconds,
        headers: FORM,
        body: () => template.body(),
      },
      warmup,
      undefined,
      vault.pid,
    );
    const mem = memory.stop();
    const ratio = round(measured.result.requestsPerSecond / base.result.requestsPerSecond, 2);
    rows.push({ ...measured.row, ratio, peakRssMb: mem.peakMb, maxRssUnderLoadMb: mem.maxRssMb });

    const targets = [
      {
        target: '>= 0.5x the bare handler',
        measured: `${ratio}x`,
        met: ratio >= 0.5,
      },
      ...(ledger === 'pglite'
        ? [
            {
              target: 'peak RSS <= 300 MB (VmHWM, since process start)',
              measured: `${mem.peakMb} MB (${mem.maxRssMb} MB under load)`,
              met: mem.peakMb <= 300,
            },
          ]
        : []),
    ];
    return {
      id: `callback-ack-${ledger}`,
      title: `Callback acknowledgement on ${ledger === 'pglite' ? 'PGlite' : 'PostgreSQL'}`,
      method:
        `autocannon, ${CONNECTIONS} keep-alive connections, ${warmup} s warm-up then ${seconds} s, ` +
        `POST /webhooks/jumio with eligible NETVERIFYID bodies of ${template.bytes} bytes ` +
        "(the simulator's shape, PII included), a unique scan reference and user per request. " +
        'The vault is the built dist/src/main.js in its own process, workers idle ' +
        '(ENROLLMENT_WORKER_INTERVAL_MS=3600000), LOG_LEVEL=warn; the baseline is ' +
        'scripts/bench/bare-express.mjs in its own process. Peak RSS: VmHWM of the process ' +
        '(includes start-up); max RSS under load: VmRSS sampled every 50 ms during the run. ' +
        "Server CPU per request: the server process's user + system time (every thread) over " +
        'the measured run, divided by the requests answered.',
      rows,
      targets,
    };
  });
}

/**
 * Callback latency at a steady rate, first with the pipeline healthy, then with every
 * Jumio endpoint hanging (workers stuck in their calls): p99 per time window.
 */
export async function callbackStalled(options: BenchOptions): Promise<ScenarioResult> {
  const windows = options.quick ? 2 : 6;
  const windowSeconds = options.seconds ?? (options.quick ? 1 : 10);
  // Below what the vault sustains on this shared 2-core machine: latency, not saturation.
  const rate = 50;
  const connections = 16;
  return using(async (defer) => {
    const sim = await startSimulatorProcess();
    defer(sim.stop);
    const template = callbackTemplate(sim.url);
    const db = await benchDatabase(options.databaseUrl);
    defer(db.drop);
    const vault = await startVault({
      sim,
      databaseUrl: db.url,
      env: { ENROLLMENT_WORKER_INTERVAL_MS: '100' },
    });
    defer(vault.stop);
    const perPhase = Math.ceil(rate * windows * windowSeconds * 1.1) + rate;
    const rows: Row[] = [];
    const p99s: Record<string, number[]> = {};
    for (const phase of ['healthy', 'stalled'] as const) {
      // Healthy: every callback names a real scan, so the workers store its facemap.
      const refs = phase === 'healthy' ? await createScans(sim.url, perPhase) : [];
      let next = 0;
      const body = () => template.body(refs[next++]);
      if (phase === 'stalled') {
        await simControl(sim.url, 'POST', 'faults', { endpoint: '*', kind: 'hang' });
      }
      await load({
        url: `${vault.url}/webhooks/jumio`,
        connections,
        seconds: 1,
        warmup: true,
        rate,
        headers: FORM,
        body,
      });
      p99s[phase] = [];
      for (let w = 0; w < windows; w++) {
        const r = await load({
          url: `${vault.url}/webhooks/jumio`,
          connections,
          seconds: windowSeconds,
          rate,
          headers: FORM,
          body,
        });
        p99s[phase].push(round(r.p99Ms, 2));
        rows.push({
          case: `${phase}, ${w * windowSeconds}-${(w + 1) * windowSeconds} s`,
          baseline: phase === 'healthy',
          throughput: round(r.requestsPerSecond),
          unit: 'req/s',
          p50Ms: round(r.p50Ms, 2),
          p99Ms: round(r.p99Ms, 2),
          failed: r.non2xx + r.errors,
        });
      }
    }
    const stalled = p99s.stalled!;
    const worst = Math.max(...stalled);
    const first = stalled[0]!;
    const last = stalled[stalled.length - 1]!;
    // "No growth": the last window's p99 within 2x of the first's (plus 2 ms of noise).
    const grows = last > first * 2 + 2;
    return {
      id: 'callback-stalled',
      title: 'Callback latency while the pipeline is stalled',
      method:
        `PostgreSQL ledger, workers polling every 100 ms (2 concurrent steps). Callbacks at a ` +
        `steady ${rate}/s (one every ${1000 / rate} ms, open loop, at most ${connections} ` +
        `connections), ${windows} windows of ${windowSeconds} s in a row per phase (after 1 s ` +
        'of warm-up). Healthy: every callback ' +
        'names a scan that exists at the simulator, so the workers run alongside. Stalled: the ' +
        "simulator's `hang` fault on every Jumio endpoint, so each worker step hangs until its " +
        'deadline while callbacks keep coming.',
      rows,
      targets: [
        { target: 'stalled p99 < 20 ms', measured: `worst window ${worst} ms`, met: worst < 20 },
        {
          target: 'no growth of p99 over the stalled windows',
          measured: `first ${first} ms, last ${last} ms`,
          met: !grows,
        },
      ],
    };
  });
}
