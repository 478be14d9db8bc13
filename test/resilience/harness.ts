/**
 * Real processes for the resilience scenarios: the built vault (dist/) in child processes,
 * a fresh PostgreSQL database per run, s3rver in its own process, the simulator over
 * loopback. Each scenario prints the figures it checked (`report`).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { hashToken } from '../../src/http/api-keys';
import { startSimulator } from '../../src/simulator/server';
import { createPostgresDatabase } from '../helpers/ledgers';
import { freePort, spawnVault, type VaultProcess, waitFor } from '../helpers/process';
import { type RunningS3rver, startS3rver } from '../helpers/s3rver';
import { SimulatorClient, TOKENS } from '../helpers/vault';

export { TOKENS };

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}-svc:${role}:${hashToken(token)}`)
  .join(',');

/** Prints a scenario's figures where jest shows them, and keeps them for the summary. */
export function report(scenario: string, figures: Record<string, unknown>): void {
  process.stdout.write(`\n[resilience] ${scenario}: ${JSON.stringify(figures)}\n`);
}

/** A TCP proxy that can refuse connections (and cut the open ones), then accept again. */
export interface RefusingProxy {
  port: number;
  /** Cuts every open connection and stops listening: connections are refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startRefusingProxy(target: number): Promise<RefusingProxy> {
  const sockets = new Set<Socket>();
  const port = await freePort();
  let server: Server | undefined;
  const up = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(target, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
        }
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const down = async () => {
    const closing = new Promise<void>((resolve) =>
      server ? server.close(() => resolve()) : resolve(),
    );
    for (const s of sockets) s.destroy();
    await closing;
    server = undefined;
  };
  await up();
  return { port, up, down, close: down };
}

export interface Stack {
  sim: SimulatorClient;
  s3: RunningS3rver;
  databaseUrl: string;
  dataDir: string;
  /** A query on the vault's database (checks only; the vault is the writer). */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Every object key under facemaps/ in the bucket. */
  objects(): Promise<string[]>;
  dispose(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const sim = new SimulatorClient(await startSimulator({ port: 0 }));
  const s3 = await startS3rver();
  const db = await createPostgresDatabase(ADMIN_URL);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'vault-resilience-'));
  const client = new Client({ connectionString: db.url });
  await client.connect();
  client.on('error', () => undefined);
  const s3client = s3.client();
  return {
    sim,
    s3,
    databaseUrl: db.url,
    dataDir,
    async sql<R>(text: string, params?: unknown[]) {
      return (await client.query(text, params)).rows as R[];
    },
    async objects() {
      const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3client.send(
          new ListObjectsV2Command({
            Bucket: s3.bucket,
            Prefix: 'facemaps/',
            ContinuationToken: token,
          }),
        );
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    async dispose() {
      await client.end().catch(() => undefined);
      await s3.close().catch(() => undefined);
      await sim.running.close().catch(() => undefined);
      await db.drop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RunningVault {
  url: string;
  metricsUrl: string;
  process: VaultProcess;
  /** SIGKILL, no goodbye. */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** The built vault on the stack's PostgreSQL, s3rver and simulator, ready when it returns. */
export async function startVault(
  stack: Stack,
  env: Record<string, string> = {},
  port?: number,
): Promise<RunningVault> {
  const httpPort = port ?? (await freePort());
  const metricsPort = await freePort();
  const child = spawnVault({
    HOST: '127.0.0.1',
    PORT: String(httpPort),
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'warn',
    VAULT_DATA_DIR: stack.dataDir,
    DATABASE_URL: stack.databaseUrl,
    BLOB_STORE: 's3',
    S3_BUCKET: stack.s3.bucket,
    S3_ENDPOINT: stack.s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    JUMIO_BASE_URL: stack.sim.baseUrl,
    JUMIO_API_TOKEN: stack.sim.running.credentials.apiToken,
    JUMIO_API_SECRET: stack.sim.running.credentials.apiSecret,
    JUMIO_USER_AGENT: 'Vault Resilience/1.0.0',
    VAULT_API_KEYS: API_KEYS,
    ENROLLMENT_WORKER_INTERVAL_MS: '100',
    READINESS_CACHE_MS: '0',
    ...env,
  });
  const url = `http://127.0.0.1:${httpPort}`;
  const exited = child.exited.then(() => true);
  await waitFor(async () => {
    if (await Promise.race([exited, Promise.resolve(false)])) {
      throw new Error(`vault exited during start-up: ${child.stderr()}`);
    }
    const res = await fetch(`${url}/readyz`);
    return res.status === 200 ? true : undefined;
  }, 60_000).catch((error: unknown) => {
    child.killAll();
    throw new Error(`${String(error)}; stderr: ${child.stderr().slice(-2000)}`);
  });
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    process: child,
    async kill() {
      child.killAll();
      await child.exited;
    },
    async stop() {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGTERM');
        await child.exited;
      }
    },
  };
}

/** Like Jumio: a callback is sent again until some vault answers 200 (bounded). */
export async function deliverUntilAcknowledged(
  sim: SimulatorClient,
  scanReference: string,
  urls: () => string[],
  maxTries = 400,
): Promise<{ tries: number; statuses: Array<number | null> }> {
  const statuses: Array<number | null> = [];
  for (let tries = 1; tries <= maxTries; tries++) {
    const targets = urls();
    const url = targets[Math.floor(Math.random() * targets.length)]!;
    const sent = await sim
      .sendCallback(scanReference, `${url}/webhooks/jumio`)
      .catch(() => ({ status: null }));
    statuses.push(sent.status);
    if (sent.status === 200) return { tries, statuses };
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
  }
  throw new Error(
    `callback for ${scanReference} never acknowledged: ${statuses.slice(-5).join(',')}`,
  );
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

export interface Onboarding {
  scanReference: string;
  eligible: boolean;
  facemapBytes: number;
}

const INELIGIBLE = [
  { verificationStatus: 'DENIED_FRAUD' },
  { similarity: 'NO_MATCH' },
  { validity: false },
  { verificationStatus: 'ERROR_NOT_READABLE_ID' },
] as const;

/** Creates `n` scans at the simulator, `eligibleShare` of them eligible, facemap sizes varied. */
export async function createOnboardings(
  sim: SimulatorClient,
  n: number,
  eligibleShare = 0.8,
): Promise<Onboarding[]> {
  return pool(
    Array.from({ length: n }, (_, i) => i),
    8,
    async (i) => {
      const eligible = Math.random() < eligibleShare;
      const facemapBytes = 1500 + Math.floor(Math.random() * 3000);
      const scan = await sim.createScan({
        facemapBytes,
        ...(eligible ? {} : INELIGIBLE[i % INELIGIBLE.length]),
      });
      return { scanReference: scan.scanReference, eligible, facemapBytes };
    },
  );
}

/** What the ledger, the bucket and the simulator say about a set of onboardings. */
export async function outcome(stack: Stack, onboardings: Onboarding[]) {
  const refs = onboardings.map((o) => o.scanReference);
  const rows = await stack.sql<{
    enrollment_reference: string;
    state: string;
    blob_key: string | null;
    facemap_bytes: number | null;
  }>(
    `SELECT enrollment_reference, state, blob_key, facemap_bytes FROM enrollments
      WHERE enrollment_reference = ANY($1)`,
    [refs],
  );
  const stored = await stack.sql<{ enrollment_reference: string; n: string }>(
    `SELECT enrollment_reference, count(*) AS n FROM audit_events
      WHERE type = 'facemap.stored' AND enrollment_reference = ANY($1)
      GROUP BY enrollment_reference`,
    [refs],
  );
  return {
    rows: new Map(rows.map((r) => [r.enrollment_reference, r])),
    storedAudits: new Map(stored.map((r) => [r.enrollment_reference, Number(r.n)])),
  };
}

/** Polls until `done` holds (bounded), returning the last value. */
export async function settle<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
