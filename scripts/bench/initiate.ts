/**
 * Authentication initiate overhead: POST /v1/authentications on the vault (ledger marks,
 * audit, blob read, decrypt, Jumio call, commit) against the same multipart sent straight
 * to the simulator's facemap/initiate, both at 50 concurrent requests.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  benchDatabase,
  callbackTemplate,
  createScans,
  FORM,
  freePort,
  load,
  measuredLoad,
  round,
  SIM_CREDENTIALS,
  startSimulatorProcess,
  startVault,
  TOKENS,
  USER_AGENT,
  using,
  waitFor,
  type BenchOptions,
  type Row,
  type ScenarioResult,
} from './lib';

const CONCURRENT = 50;

/** The multipart the vault's Jumio client sends (undici-jumio-client.ts, multipart()). */
const BOUNDARY = `bench-${randomBytes(16).toString('hex')}`;

function initiateMultipart(facemap: Buffer, metadata: Record<string, string>): Buffer {
  const boundary = BOUNDARY;
  const part = (name: string, filename: string, type: string, bytes: Buffer) => [
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; ` +
        `filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`,
    ),
    bytes,
    Buffer.from('\r\n'),
  ];
  return Buffer.concat([
    ...part('facemap', 'facemap.bin', 'application/octet-stream', facemap),
    ...part(
      'enrollmentMetadata',
      'enrollmentMetadata.json',
      'application/json',
      Buffer.from(JSON.stringify({ enrollmentMetadata: metadata })),
    ),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
}

export async function initiateOverhead(options: BenchOptions): Promise<ScenarioResult> {
  // An initiate takes seconds when the machine is busy: even a quick run needs a few answers.
  const warmup = options.quick ? 2 : 3;
  const seconds = options.seconds ?? (options.quick ? 5 : 20);
  return using(async (defer) => {
    const sim = await startSimulatorProcess();
    defer(sim.stop);
    const db = await benchDatabase(options.databaseUrl);
    defer(db.drop);
    // Jumio's callbacks (EXPIRED for each superseded authentication) go to a closed port:
    // this scenario measures the initiate alone (see bench/NOTES.md on why).
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const metricsPort = await freePort();
    const vault = await startVault({
      sim,
      databaseUrl: db.url,
      env: {
        METRICS_PORT: String(metricsPort),
        AUTH_MAX_PER_USER_PER_HOUR: '100000',
        ENROLLMENT_WORKER_INTERVAL_MS: '100',
        VAULT_PUBLIC_URL: nowhere,
      },
    });
    defer(vault.stop);

    // One ACTIVE enrollment per connection: initiates of one user are serialised.
    const facemaps = new Map<string, string>();
    const refs = await createScans(sim.url, CONCURRENT, facemaps);
    const template = callbackTemplate(sim.url);
    const users = refs.map((ref) => `bench-${ref.slice(0, 18)}`);
    let next = 0;
    await load({
      url: `${vault.url}/webhooks/jumio`,
      connections: 8,
      amount: refs.length,
      headers: FORM,
      body: () => template.body(refs[next++]),
    });
    const deadline = performance.now() + 120_000;
    for (;;) {
      const [row] = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM enrollments WHERE state = 'ACTIVE'`,
      );
      if (Number(row!.n) >= refs.length) break;
      if (performance.now() > deadline) throw new Error(`only ${row!.n} users became ACTIVE`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // Direct: each connection sends its own enrollment's initiate, as the vault would.
    const bodies = refs.map((ref, i) =>
      initiateMultipart(Buffer.from(facemaps.get(ref)!, 'base64'), {
        enrollmentTransactionReference: ref,
        userReference: users[i]!,
        callbackUrl: `${nowhere}/webhooks/jumio`,
      }),
    );
    let nextConnection = 0;
    const connectionIndex = (context: Record<string, unknown>) =>
      (context.i ??= nextConnection++ % CONCURRENT) as number;
    /** Waits until `from` (a FROM clause) has no row. */
    const untilNone = (from: string, timeoutMs: number) =>
      waitFor(async () => {
        const [row] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`);
        return Number(row!.n) === 0 ? true : undefined;
      }, timeoutMs).then(() => undefined);
    // The warm-up stops with initiates in flight; a user's next one would get 409 until
    // they end (one initiate per enrollment at a time), so they end first.
    const settled = () => untilNone('authentication_initiations', 60_000);
    const pair = async (connections: number, runSeconds: number) => {
      const suffix = connections === 1 ? ', 1 at a time' : '';
      nextConnection = 0;
      const direct = await measuredLoad(
        `multipart straight to the simulator${suffix}`,
        {
          url: `${sim.url}/api/authentication/v1/facemap/initiate`,
          connections,
          seconds: runSeconds,
          headers: {
            authorization: `Basic ${Buffer.from(`${SIM_CREDENTIALS.apiToken}:${SIM_CREDENTIALS.apiSecret}`).toString('base64')}`,
            'user-agent': USER_AGENT,
            accept: 'application/json',
            'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
          },
          body: (context) => bodies[connectionIndex(context)]!,
        },
        warmup,
      );
      nextConnection = 0;
      const viaVault = await measuredLoad(
        `vault POST /v1/authentications${suffix}`,
        {
          url: `${vault.url}/v1/authentications`,
          connections,
          seconds: runSeconds,
          headers: {
            authorization: `Bearer ${TOKENS.authenticator}`,
            'content-type': 'application/json',
          },
          body: (context) =>
            JSON.stringify({
              userReference: users[connectionIndex(context)],
              purpose: 'benchmark',
            }),
        },
        warmup,
        settled,
      );
      await settled();
      return { direct, viaVault };
    };
    const { direct, viaVault } = await pair(CONCURRENT, seconds);
    // One at a time: what the vault's own steps cost when nothing queues (no contention
    // for the two cores between the vault, the simulator, PostgreSQL and the generator).
    // The superseded authentications of the concurrent run are deleted at Jumio by the
    // worker first, so that the run alone measures the initiates, not that backlog.
    await untilNone(
      'authentications WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= now()',
      120_000,
    );
    const before = await histogramTotals(`http://127.0.0.1:${metricsPort}/metrics`);
    const alone = await pair(1, Math.max(3, Math.round(seconds / 2)));
    const after = await histogramTotals(`http://127.0.0.1:${metricsPort}/metrics`);
    // Where one initiate's time goes, one at a time: the vault's own histograms (mean ms
    // per operation, and operations per initiate) over that run.
    // Per initiate made (the warm-up's included): Jumio's initiate calls in that run.
    const calls = (key: string) => (after.get(key)?.count ?? 0) - (before.get(key)?.count ?? 0);
    const initiates = calls('jumio_request endpoint=initiate,status=200');
    const steps: Row[] = [...after]
      .map(([key, now]) => {
        const then = before.get(key) ?? { sum: 0, count: 0 };
        const count = now.count - then.count;
        return {
          case: `1 at a time: ${key}`,
          operations: count,
          perInitiate: round(count / Math.max(1, initiates), 2),
          meanMs: count > 0 ? round(((now.sum - then.sum) / count) * 1000, 2) : 0,
        };
      })
      .filter((r) => r.operations > 0)
      .sort((a, b) => b.meanMs * b.perInitiate - a.meanMs * a.perInitiate);
    const failed = viaVault.result.non2xx + viaVault.result.errors;
    if (failed > 0) {
      // What the vault logged about them (messages only), for the notes.
      const errors = new Map<string, number>();
      for (const line of vault.logs().split('\n')) {
        const m = /"level":50.*?"message":"([^"]{0,200})/.exec(line);
        if (m) errors.set(m[1]!, (errors.get(m[1]!) ?? 0) + 1);
      }
      console.log('vault errors (from the tail of its log):', Object.fromEntries(errors));
    }
    const p50 = round(viaVault.result.p50Ms - direct.result.p50Ms, 2);
    const p99 = round(viaVault.result.p99Ms - direct.result.p99Ms, 2);
    return {
      id: 'initiate-overhead',
      title: 'Authentication initiate overhead at 50 concurrent',
      method:
        `${CONCURRENT} users onboarded to ACTIVE first (PostgreSQL, fs blobs, local key). ` +
        `autocannon, ${CONCURRENT} connections, each bound to one user (initiates of one user ` +
        `are serialised by design), ${warmup} s warm-up then ${seconds} s. Direct: the ` +
        'multipart the vault builds (facemap part + wrapped enrollmentMetadata) with the same ' +
        "facemap, posted to the simulator's facemap/initiate with Basic auth. Vault: " +
        'POST /v1/authentications {userReference, purpose} with an authenticator key ' +
        '(AUTH_MAX_PER_USER_PER_HOUR=100000). The callback URL of both (VAULT_PUBLIC_URL) is ' +
        "a closed port, so the simulator's EXPIRED callbacks for superseded authentications " +
        'fail fast instead of loading the vault (see the notes). Then the same pair with one ' +
        "connection (one request at a time): the overhead of the vault's own steps without " +
        'queueing.',
      rows: [
        { ...direct.row, baseline: true, ratio: 1 },
        {
          ...viaVault.row,
          ratio: round(viaVault.result.requestsPerSecond / direct.result.requestsPerSecond, 2),
          p50OverheadMs: p50,
          p99OverheadMs: p99,
        },
        { ...alone.direct.row, baseline: true, ratio: 1 },
        {
          ...alone.viaVault.row,
          ratio: round(
            alone.viaVault.result.requestsPerSecond / alone.direct.result.requestsPerSecond,
            2,
          ),
          p50OverheadMs: round(alone.viaVault.result.p50Ms - alone.direct.result.p50Ms, 2),
          p99OverheadMs: round(alone.viaVault.result.p99Ms - alone.direct.result.p99Ms, 2),
        },
        ...steps,
      ],
      targets: [
        // Latencies count answered requests only: with failures, a target is not met.
        {
          target: 'vault minus direct p50 <= 5 ms',
          measured: `${p50} ms${failed ? `, ${failed} failed` : ''}`,
          met: p50 <= 5 && failed === 0,
        },
        {
          target: 'vault minus direct p99 <= 20 ms',
          measured: `${p99} ms${failed ? `, ${failed} failed` : ''}`,
          met: p99 <= 20 && failed === 0,
        },
      ],
    };
  });
}

/**
 * Sum and count of the vault's duration histograms, per metric and labels (the vault's
 * own timing of ledger transactions, blob reads, envelope operations and Jumio calls).
 */
async function histogramTotals(url: string): Promise<Map<string, { sum: number; count: number }>> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
  const totals = new Map<string, { sum: number; count: number }>();
  for (const line of text.split('\n')) {
    const m = /^vault_(\w+?)_duration_seconds_(sum|count)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] === 'http_request') continue;
    const key = `${m[1]} ${(m[3] ?? '').replace(/[{}"]/g, '')}`.trim();
    const entry = totals.get(key) ?? { sum: 0, count: 0 };
    entry[m[2] as 'sum' | 'count'] = Number(m[4]);
    totals.set(key, entry);
  }
  return totals;
}
