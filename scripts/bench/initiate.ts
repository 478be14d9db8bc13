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
  type BenchOptions,
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
    const vault = await startVault({
      sim,
      databaseUrl: db.url,
      env: {
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
    const direct = await measuredLoad(
      'multipart straight to the simulator',
      {
        url: `${sim.url}/api/authentication/v1/facemap/initiate`,
        connections: CONCURRENT,
        seconds,
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
      'vault POST /v1/authentications',
      {
        url: `${vault.url}/v1/authentications`,
        connections: CONCURRENT,
        seconds,
        headers: {
          authorization: `Bearer ${TOKENS.authenticator}`,
          'content-type': 'application/json',
        },
        body: (context) =>
          JSON.stringify({ userReference: users[connectionIndex(context)], purpose: 'benchmark' }),
      },
      warmup,
    );
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
        'fail fast instead of loading the vault (see the notes).',
      rows: [
        { ...direct.row, baseline: true, ratio: 1 },
        {
          ...viaVault.row,
          ratio: round(viaVault.result.requestsPerSecond / direct.result.requestsPerSecond, 2),
          p50OverheadMs: p50,
          p99OverheadMs: p99,
        },
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
