import { randomBytes } from 'node:crypto';
import type { BlobStore, Clock, Envelope, Ledger } from './ports';

export type CheckResult = 'ok' | 'failed' | 'timeout';
export type CheckName = 'ledger' | 'blobs' | 'envelope';

/** Why a check failed, for the operator's log: names and codes, never credentials. */
export interface CheckFailure {
  error: string;
  code?: string;
  message?: string;
  cause?: { error: string; code?: string; message?: string };
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<CheckName, CheckResult>;
  /** The failed checks' causes (not for the public answer). */
  failures: Partial<Record<CheckName, CheckFailure>>;
}

const MAX_MESSAGE = 300;

/** Bounded, with any `user:password@` in a URL blanked. */
function safeMessage(message: unknown): string | undefined {
  if (typeof message !== 'string' || message === '') return undefined;
  return message.replace(/\/\/[^/@\s]*@/g, '//[redacted]@').slice(0, MAX_MESSAGE);
}

function shallow(err: unknown): { error: string; code?: string; message?: string } {
  if (typeof err !== 'object' || err === null) return { error: typeof err };
  const { name, code, message } = err as { name?: unknown; code?: unknown; message?: unknown };
  const text = safeMessage(message);
  return {
    error: typeof name === 'string' ? name : 'Error',
    ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
    ...(text === undefined ? {} : { message: text }),
  };
}

/** The error and its first cause (where the network or SDK failure usually sits). */
export function describeFailure(err: unknown): CheckFailure {
  const cause = (err as { cause?: unknown } | null)?.cause;
  return { ...shallow(err), ...(cause === undefined ? {} : { cause: shallow(cause) }) };
}

function withTimeout(
  work: Promise<unknown>,
  ms: number,
): Promise<{ result: CheckResult; failure?: CheckFailure }> {
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ result: 'timeout', failure: { error: 'timeout', message: `${ms} ms` } }),
      ms,
    );
    work.then(
      () => resolve({ result: 'ok' }),
      (err: unknown) => resolve({ result: 'failed', failure: describeFailure(err) }),
    );
    work.finally(() => clearTimeout(timer)).catch(() => undefined);
  });
}

/** The readiness context names no person: it only proves the keyring works. */
export const READINESS_CONTEXT = { purpose: 'readiness-probe', format: '1' };

/** Encrypts and decrypts random bytes under the current key (readiness, `vault doctor`). */
export async function envelopeRoundTrip(envelope: Envelope): Promise<void> {
  const probe = randomBytes(32);
  const { ciphertext } = await envelope.encrypt(probe, READINESS_CONTEXT);
  const back = await envelope.decrypt(ciphertext, READINESS_CONTEXT);
  if (!probe.equals(back)) throw new Error('envelope round trip returned other bytes');
}

/** Ledger query, blob store reachable, envelope round trip; each bounded in time. */
export async function checkReadiness(
  deps: { ledger: Ledger; blobs: BlobStore; envelope: Envelope },
  timeoutMs = 3000,
): Promise<ReadinessReport> {
  const [ledger, blobs, envelope] = await Promise.all([
    withTimeout(deps.ledger.ping(), timeoutMs),
    withTimeout(deps.blobs.ping(), timeoutMs),
    withTimeout(envelopeRoundTrip(deps.envelope), timeoutMs),
  ]);
  const all = { ledger, blobs, envelope };
  const checks = { ledger: ledger.result, blobs: blobs.result, envelope: envelope.result };
  const failures: ReadinessReport['failures'] = {};
  for (const name of ['ledger', 'blobs', 'envelope'] as const) {
    const failure = all[name].failure;
    if (failure !== undefined) failures[name] = failure;
  }
  return { ready: Object.values(checks).every((c) => c === 'ok'), checks, failures };
}

/**
 * checkReadiness, its result reused for `cacheMs`: a public /readyz probe costs at most
 * one KMS round trip and one blob store probe per interval, however often it is called.
 * Concurrent probes share the check in flight. `fresh` tells whether this call ran it.
 */
export function cachedReadiness(
  deps: { ledger: Ledger; blobs: BlobStore; envelope: Envelope; clock: Clock },
  cacheMs: number,
  timeoutMs = 3000,
): () => Promise<{ report: ReadinessReport; fresh: boolean }> {
  let last: { report: ReadinessReport; at: number } | undefined;
  let inFlight: Promise<ReadinessReport> | undefined;
  return async () => {
    const now = deps.clock.now().getTime();
    if (last !== undefined && now - last.at < cacheMs && now >= last.at) {
      return { report: last.report, fresh: false };
    }
    if (inFlight !== undefined) return { report: await inFlight, fresh: false };
    inFlight = checkReadiness(deps, timeoutMs);
    try {
      const report = await inFlight;
      last = { report, at: deps.clock.now().getTime() };
      return { report, fresh: true };
    } finally {
      inFlight = undefined;
    }
  };
}
