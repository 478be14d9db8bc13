import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { buildContainer, type Container, type ContainerOverrides } from '../../src/container';
import type { RetryPolicy } from '../../src/core/enrollment/pipeline';
import { hashToken } from '../../src/http/api-keys';
import { createHttpServer } from '../../src/http/server';
import { recordingResponses } from './conformance';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server';
import { createPostgresDatabase } from './ledgers';
import { captureLogs } from './logs';

/** Retries in milliseconds instead of minutes, so exhaustion is testable. */
export const FAST_RETRY: Partial<RetryPolicy> = {
  baseMs: 1,
  maxMs: 5,
  maxAttempts: 4,
  pendingScheduleMs: [1, 1, 1],
  pendingThenMs: 1,
  pendingMaxAttempts: 5,
};

export const TOKENS = {
  admin: 'admin-token-0123456789abcdef0123456789',
  auditor: 'auditor-token-0123456789abcdef012345678',
  authenticator: 'authenticator-token-0123456789abcdef01',
  onboarding: 'onboarding-token-0123456789abcdef012345',
};

const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}-svc:${role}:${hashToken(token)}`)
  .join(',');

/** Where a test vault keeps its ledger: PGlite in its data dir, or a fresh PostgreSQL DB. */
export interface LedgerChoice {
  name: 'pglite' | 'postgres';
  env: Record<string, string>;
  dispose(): Promise<void>;
}

type LedgerKind = [string, () => Promise<LedgerChoice>];

/** Same selection rule as the ledger contract suite (TEST_DATABASE_URL, TEST_LEDGERS). */
export const vaultLedgerKinds: LedgerKind[] = [
  ...(process.env.TEST_LEDGERS === 'postgres'
    ? []
    : [
        [
          'pglite',
          async () => ({ name: 'pglite', env: {}, dispose: async () => undefined }),
        ] as LedgerKind,
      ]),
  ...(process.env.TEST_DATABASE_URL
    ? [
        [
          'postgres',
          async () => {
            const db = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
            return { name: 'postgres', env: { DATABASE_URL: db.url }, dispose: db.drop };
          },
        ] as LedgerKind,
      ]
    : []),
];

export interface TestVault {
  container: Container;
  url: string;
  sim: SimulatorClient;
  dataDir: string;
  logs: ReturnType<typeof captureLogs>;
  /** Stops this vault only (the simulator and data directory stay): a "crash". */
  stop(): Promise<void>;
}

export interface VaultOptions {
  env?: Record<string, string>;
  overrides?: ContainerOverrides;
}

/** Drives the standalone simulator through its control API, over real HTTP. */
export class SimulatorClient {
  constructor(readonly running: RunningSimulator) {}

  get baseUrl(): string {
    return this.running.baseUrl;
  }

  async control<T = Record<string, unknown>>(
    method: string,
    route: string,
    body?: unknown,
  ): Promise<T> {
    const res = await fetch(`${this.baseUrl}/__sim/${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`simulator ${method} ${route}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  createScan(body: Record<string, unknown> = {}) {
    return this.control<{ scanReference: string; facemapSha256: string; facemapBase64: string }>(
      'POST',
      'scans',
      { customerId: `user-${randomBytes(6).toString('hex')}`, ...body },
    );
  }

  scan(ref: string) {
    return this.control<{
      deleted: boolean;
      facemapDownloads: number;
      customerId?: string;
    }>('GET', `scans/${ref}`);
  }

  sendCallback(ref: string, url: string, extra: Record<string, unknown> = {}) {
    return this.control<{ status: number | null; body: unknown }>('POST', `scans/${ref}/callback`, {
      url,
      ...extra,
    });
  }

  async requests(): Promise<
    Array<{ seq: number; method: string; path: string; endpoint: string; status: number | null }>
  > {
    return (
      await this.control<{
        requests: Array<{
          seq: number;
          method: string;
          path: string;
          endpoint: string;
          status: number | null;
        }>;
      }>('GET', 'requests')
    ).requests;
  }

  fault(body: Record<string, unknown>) {
    return this.control('POST', 'faults', body);
  }

  clearFaults() {
    return this.control('DELETE', 'faults');
  }
}

export async function startTestSimulator(): Promise<SimulatorClient> {
  return new SimulatorClient(await startSimulator({ port: 0 }));
}

/**
 * A whole vault as main.ts composes it (real container, real HTTP on loopback), talking
 * to the standalone simulator, with fast retries and bounded Jumio timeouts. The pipeline
 * is driven by the test (`container.pipeline.runOnce()`), not by background workers.
 */
export async function startTestVault(
  sim: SimulatorClient,
  ledger: LedgerChoice,
  options: VaultOptions = {},
  dataDir?: string,
): Promise<TestVault> {
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'vault-it-')));
  const config = loadConfig({
    VAULT_DATA_DIR: dir,
    JUMIO_BASE_URL: sim.baseUrl,
    JUMIO_API_TOKEN: sim.running.credentials.apiToken,
    JUMIO_API_SECRET: sim.running.credentials.apiSecret,
    JUMIO_USER_AGENT: 'Vault Tests/1.0.0',
    FACEMAP_MAX_BYTES: String(64 * 1024),
    VAULT_API_KEYS: API_KEYS,
    ...ledger.env,
    ...options.env,
  });
  const logs = captureLogs();
  const container = await buildContainer(config, logs.logger, {
    ...options.overrides,
    pipeline: { retry: FAST_RETRY, leaseMs: 30_000, ...options.overrides?.pipeline },
    jumio: {
      // Generous enough that a busy machine never times out a healthy call (exact request
      // sequences are asserted); the hang faults pay this per hung call.
      timeouts: { connectMs: 2000, headersMs: 1500, bodyMs: 1500 },
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      ...options.overrides?.jumio,
    },
  });
  // Every response is recorded and checked against /openapi.json when the file ends.
  const app = createApp(container);
  const server: Server = createHttpServer(recordingResponses(app), config.http);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    container,
    url: `http://127.0.0.1:${port}`,
    sim,
    dataDir: dir,
    logs,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await container.close();
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Every file under a directory, recursively, as bytes (for leak searches). */
export async function readTree(dir: string): Promise<Array<{ file: string; bytes: Buffer }>> {
  const out: Array<{ file: string; bytes: Buffer }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.push({ file, bytes: await readFile(file) });
  }
  return out;
}
