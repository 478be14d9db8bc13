/**
 * What every scenario of `npm run bench` shares: the result shape, the load generators
 * (autocannon as a library; an open-loop one for steady rates), real processes (the built
 * vault, the simulator, the bare Express baseline), PostgreSQL databases of their own, and
 * peak-RSS sampling.
 */
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'pg';
import { hashToken } from '../../src/http/api-keys';
import { scanCallbackForm } from '../../src/simulator/callbacks';
import { scanPii } from '../../src/simulator/pii';
import type { SimScan } from '../../src/simulator/state';
import { createPostgresDatabase } from '../../test/helpers/ledgers';
import {
  freePort,
  ROOT,
  runVault,
  waitFor,
  type CliRun,
  type VaultProcess,
} from '../../test/helpers/process';

export { freePort, ROOT, runVault, waitFor, type CliRun };

/** One line of a scenario's table. `ratio` is to the scenario's baseline (throughput). */
export interface Row {
  case: string;
  baseline?: boolean;
  throughput?: number;
  unit?: string;
  p50Ms?: number;
  p99Ms?: number;
  ratio?: number;
  [extra: string]: string | number | boolean | undefined;
}

export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** How it was measured, one paragraph (generated from the options actually used). */
  method: string;
  rows: Row[];
  targets: Target[];
  seconds?: number;
  /** 1, 5 and 15 minute load averages when the scenario ended (the machine is shared). */
  loadAverage?: number[];
  /** When it started, and the commit measured (scenarios may be re-run with --only). */
  ranAt?: string;
  commit?: string;
  error?: string;
}

export interface BenchOptions {
  quick: boolean;
  databaseUrl: string;
  /** Scales durations: `--seconds` overrides each load phase's length. */
  seconds?: number;
}

export const USER_AGENT = 'Vault Bench/1.0.0';
export const SIM_CREDENTIALS = { apiToken: 'sim-api-token', apiSecret: 'sim-api-secret' };
export const TOKENS = {
  admin: 'admin-token-bench-0123456789abcdef0123',
  authenticator: 'authenticator-token-bench-0123456789ab',
};
const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}-bench:${role}:${hashToken(token)}`)
  .join(',');

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

// ---- load generation -------------------------------------------------------------------

export interface LoadOptions {
  url: string;
  connections: number;
  seconds?: number;
  amount?: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A fresh body per request (unique references); `context` is per connection. */
  body?: (context: Record<string, unknown>) => string | Buffer;
  /**
   * Requests per second, evenly spaced and sent whether or not earlier ones were answered
   * (open loop, see steadyLoad); unset: as fast as answered (autocannon).
   */
  rate?: number;
  /** A warm-up may end before its first answer; a measured run may not. */
  warmup?: boolean;
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** `status: count`, e.g. "201: 600, 503: 5". */
  statuses: string;
}

/** One run; any non-2xx or socket error is reported, not hidden. */
export async function load(options: LoadOptions): Promise<LoadResult> {
  if (options.rate !== undefined) return steadyLoad({ ...options, rate: options.rate });
  const { body } = options;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    ...(options.amount !== undefined ? { amount: options.amount } : {}),
    ...(options.amount === undefined ? { duration: options.seconds ?? 5 } : {}),
    ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
    method: options.method ?? 'POST',
    headers: options.headers ?? {},
    timeout: 30,
    requests: [
      {
        setupRequest: body
          ? (req: Record<string, unknown>, context: Record<string, unknown>) => ({
              ...req,
              body: body(context),
            })
          : undefined,
      },
    ] as autocannon.Request[],
  });
  const elapsed = result.duration || 1;
  const requests = result.requests.total;
  if (requests === 0 && !options.warmup) {
    throw new Error(`no request to ${options.url} was answered (${result.errors} errors)`);
  }
  return {
    requestsPerSecond: requests / elapsed,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statuses: Object.entries(
      (result as unknown as { statusCodeStats?: Record<string, { count: number }> })
        .statusCodeStats ?? {},
    )
      .map(([status, { count }]) => `${status}: ${count}`)
      .join(', '),
  };
}

/** The `q` quantile of ascending `sorted` (0 when empty). */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * A steady rate: request i is sent at start + i/rate, whatever happened to the earlier
 * ones (open loop). autocannon's rate is not that: each connection sends its share of a
 * second back to back when the second starts, so every second begins with a burst and the
 * latency measured is that of the burst's queue. Latency runs from the send (a request
 * waiting for a free connection of the pool waits on the clock). The sender is a process of
 * its own (steady-sender.mjs): in this one, a major GC of the harness's heap (ts-node) once
 * added 80 ms to the requests in flight, and the p99 of a window with it.
 */
async function steadyLoad(options: LoadOptions & { rate: number }): Promise<LoadResult> {
  const total = Math.max(1, Math.round(options.rate * (options.seconds ?? 5)));
  // Made before the run, so that the sender does nothing but send.
  const bodies = Array.from({ length: total }, () => options.body?.({}) ?? null);
  const sender = fork(path.join(ROOT, 'scripts/bench/steady-sender.mjs'), {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const answer = new Promise<{
    latencies: number[];
    statuses: Record<string, number>;
    errors: number;
    elapsedMs: number;
  }>((resolve, reject) => {
    sender.once('message', resolve as (m: unknown) => void);
    sender.once('exit', (code) => reject(new Error(`the steady sender exited (${code})`)));
  });
  sender.send({
    url: options.url,
    rate: options.rate,
    connections: options.connections,
    method: options.method ?? 'POST',
    headers: options.headers ?? {},
    bodies,
  });
  const { latencies, statuses, errors, elapsedMs } = await answer;
  latencies.sort((a, b) => a - b);
  const counted = Object.entries(statuses).map(([s, n]) => [Number(s), n] as const);
  const ok = counted.filter(([s]) => s >= 200 && s < 300).reduce((n, [, c]) => n + c, 0);
  if (latencies.length === 0 && !options.warmup) {
    throw new Error(`no request to ${options.url} was answered (${errors} errors)`);
  }
  return {
    requestsPerSecond: latencies.length / (elapsedMs / 1000),
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    requests: latencies.length,
    non2xx: latencies.length - ok,
    errors,
    statuses: counted.map(([status, count]) => `${status}: ${count}`).join(', '),
  };
}

/** Warm-up, then the measured run, as a table row. */
export async function measuredLoad(
  label: string,
  options: LoadOptions,
  warmupSeconds: number,
  /** Waits, after the warm-up, until the server finished what the warm-up left in flight. */
  settle?: () => Promise<void>,
  /** The server's process: its CPU time per request in the measured run is reported. */
  serverPid?: number,
): Promise<{ row: Row; result: LoadResult }> {
  if (warmupSeconds > 0) {
    await load({ ...options, seconds: warmupSeconds, amount: undefined, warmup: true });
    await settle?.();
  }
  const cpu0 = serverPid === undefined ? 0 : cpuMsOf(serverPid);
  const result = await load(options);
  const cpu = serverPid === undefined ? undefined : cpuMsOf(serverPid) - cpu0;
  return {
    result,
    row: {
      case: label,
      throughput: round(result.requestsPerSecond),
      unit: 'req/s',
      p50Ms: round(result.p50Ms, 2),
      p99Ms: round(result.p99Ms, 2),
      requests: result.requests,
      failed: result.non2xx + result.errors,
      ...(result.non2xx > 0 ? { statuses: result.statuses } : {}),
      ...(cpu === undefined
        ? {}
        : { serverCpuMsPerRequest: round(cpu / Math.max(1, result.requests), 3) }),
    },
  };
}

// ---- memory ----------------------------------------------------------------------------

/** VmHWM (peak resident set since start) and VmRSS of a process, in MB; 0 once gone. */
/**
 * How busy the whole machine's CPUs are from now until `stop()` (every process: the vault,
 * the simulator, PostgreSQL, the harness), in percent of all cores.
 */
export function machineBusy(): { stop(): number } {
  const read = () => {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    const n = ticks.map(Number);
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, idle: n[3]! + n[4]! };
  };
  const start = read();
  return {
    stop() {
      const end = read();
      const total = end.total - start.total;
      return total > 0 ? round(100 * (1 - (end.idle - start.idle) / total)) : 0;
    },
  };
}

/** CPU time (user + system, all threads) a process has used so far, in ms; 0 once gone. */
export function cpuMsOf(pid: number): number {
  try {
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks
    // (100 per second on Linux).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

export function memoryOf(pid: number): { peakMb: number; rssMb: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { peakMb: round(kb('VmHWM') / 1024), rssMb: round(kb('VmRSS') / 1024) };
  } catch {
    return { peakMb: 0, rssMb: 0 };
  }
}

/** Samples a process's memory every 50 ms; `stop()` gives the highest figures seen. */
export function sampleMemory(pid: number) {
  let peakMb = 0;
  let rssMb = 0;
  const take = () => {
    const m = memoryOf(pid);
    peakMb = Math.max(peakMb, m.peakMb);
    rssMb = Math.max(rssMb, m.rssMb);
  };
  take();
  const timer = setInterval(take, 50);
  return {
    stop() {
      take();
      clearInterval(timer);
      return { peakMb, maxRssMb: rssMb };
    },
  };
}

// ---- processes -------------------------------------------------------------------------

export interface Running {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function stopProcess(p: VaultProcess): Promise<void> {
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.killAll(), 15_000);
  await p.exited;
  clearTimeout(timer);
}

async function waitHttp(url: string, what: string, p: VaultProcess, timeoutMs = 120_000) {
  let exited = false;
  void p.exited.then(() => (exited = true));
  await waitFor(async () => {
    if (exited) throw new Error(`${what} exited:\n${p.stderr()}\n${p.stdout()}`);
    const res = await fetch(url);
    return res.status === 200 ? true : undefined;
  }, timeoutMs).catch((error: unknown) => {
    p.killAll();
    throw new Error(`${what} did not come up: ${String(error)}\n${p.stderr().slice(-2000)}`);
  });
}

/** The simulator as its own process (`dist/src/simulator/main.js`). */
export async function startSimulatorProcess(): Promise<Running> {
  const port = await freePort();
  const p = spawnNode(path.join(ROOT, 'dist/src/simulator/main.js'), {
    JUMIO_SIMULATOR_PORT: String(port),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/__sim`, 'simulator', p);
  return { url, pid: p.child.pid!, stop: () => stopProcess(p) };
}

/** The bare Express 5 baseline (bare-express.mjs). */
export async function startBareExpress(): Promise<Running> {
  const port = await freePort();
  const p = spawnNode(path.join(ROOT, 'scripts/bench/bare-express.mjs'), { PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`, 'bare express', p);
  return { url, pid: p.child.pid!, stop: () => stopProcess(p) };
}

function spawnNode(
  file: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): VaultProcess {
  const child = spawn(process.execPath, [...nodeArgs, file], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  // Only the tail is kept: a long run logs a lot.
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    killAll: () => {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
    },
  };
}

export interface VaultSettings {
  sim: Running;
  /** PostgreSQL URL; unset: the embedded PGlite ledger in the data directory. */
  databaseUrl?: string;
  dataDir?: string;
  env?: Record<string, string>;
}

export interface RunningVault extends Running {
  dataDir: string;
  /** The tail of its log (stdout and stderr). */
  logs(): string;
}

/**
 * The built vault (`dist/src/main.js`) as its own process, with fs blobs and a local key,
 * talking to the simulator process. LOG_LEVEL=warn: the figures are the vault's work, not
 * the harness reading its log pipe.
 */
export async function startVault(settings: VaultSettings): Promise<RunningVault> {
  const dataDir = settings.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'vault-bench-')));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // --cpu-prof <dir> of the harness (BENCH_CPU_PROF): a V8 CPU profile per vault process.
  const profile = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`]
    : [];
  const p = spawnNode(
    path.join(ROOT, 'dist/src/main.js'),
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
      VAULT_DATA_DIR: dataDir,
      VAULT_PUBLIC_URL: url,
      VAULT_API_KEYS: API_KEYS,
      JUMIO_BASE_URL: settings.sim.url,
      JUMIO_API_TOKEN: SIM_CREDENTIALS.apiToken,
      JUMIO_API_SECRET: SIM_CREDENTIALS.apiSecret,
      JUMIO_USER_AGENT: USER_AGENT,
      JUMIO_CALLBACK_ALLOWED_CIDRS: '127.0.0.1/32',
      ...(settings.databaseUrl ? { DATABASE_URL: settings.databaseUrl } : {}),
      ...settings.env,
    },
    profile,
  );
  await waitHttp(`${url}/readyz`, 'vault', p, 180_000);
  return {
    url,
    pid: p.child.pid!,
    dataDir,
    logs: () => `${p.stdout()}${p.stderr()}`,
    async stop() {
      await stopProcess(p);
      if (!settings.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---- PostgreSQL ------------------------------------------------------------------------

/** A new database of its own next to `adminUrl`'s, dropped by `drop()`. */
export async function benchDatabase(adminUrl: string) {
  const db = await createPostgresDatabase(adminUrl);
  return {
    url: db.url,
    drop: db.drop,
    async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
      const client = new Client({ connectionString: db.url });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows as T[];
      } finally {
        await client.end();
      }
    },
  };
}

// ---- Jumio-shaped inputs ---------------------------------------------------------------

/**
 * An eligible NETVERIFYID callback as the simulator sends it (PII included, about 1.6 KB),
 * with placeholders for the scan reference and the user, filled per request.
 */
export function callbackTemplate(simUrl: string) {
  const REF = '00000000-0000-4000-8000-00000000feed';
  const USER = 'bench-user-placeholder';
  const scan: SimScan = {
    scanReference: REF,
    status: 'DONE',
    verificationStatus: 'APPROVED_VERIFIED',
    similarity: 'MATCH',
    validity: true,
    customerId: USER,
    idScanSource: 'WEB',
    facemap: Buffer.alloc(1),
    facemapSha256: null,
    createdAt: new Date(),
    deleted: false,
    deletedAt: null,
    facemapDownloads: 0,
    responseVariant: {},
    callbacks: [],
  };
  const text = scanCallbackForm({
    scan,
    pii: scanPii(REF, simUrl),
    baseUrl: simUrl,
    now: new Date(),
  }).toString();
  return {
    bytes: Buffer.byteLength(text),
    body(ref: string = randomUUID(), user = `bench-${ref.slice(0, 18)}`) {
      return text.replaceAll(REF, ref).replaceAll(USER, user);
    },
  };
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** Creates eligible scans at the simulator (the references callbacks will name). */
export async function createScans(
  simUrl: string,
  count: number,
  facemaps?: Map<string, string>,
  concurrency = 16,
) {
  const refs = Array.from({ length: count }, () => randomUUID());
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < refs.length) {
        const ref = refs[next++]!;
        const res = await fetch(`${simUrl}/__sim/scans`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ scanReference: ref, customerId: `bench-${ref.slice(0, 18)}` }),
        });
        if (res.status !== 201)
          throw new Error(`simulator scan: ${res.status} ${await res.text()}`);
        const created = (await res.json()) as { facemapBase64: string };
        facemaps?.set(ref, created.facemapBase64);
      }
    }),
  );
  return refs;
}

export async function simControl(simUrl: string, method: string, route: string, body?: unknown) {
  const res = await fetch(`${simUrl}/__sim/${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`simulator ${method} ${route}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as Record<string, unknown>;
}

/** Runs `fn` and always tears down what it started, in reverse order. */
export async function using<T>(
  fn: (defer: (stop: () => Promise<unknown>) => void) => Promise<T>,
): Promise<T> {
  const stops: Array<() => Promise<unknown>> = [];
  try {
    return await fn((stop) => stops.push(stop));
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}
