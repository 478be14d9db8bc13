import { randomBytes } from 'node:crypto';
import type { BlobStore, Envelope, Ledger } from './ports';

export type CheckResult = 'ok' | 'failed' | 'timeout';

export interface ReadinessReport {
  ready: boolean;
  checks: { ledger: CheckResult; blobs: CheckResult; envelope: CheckResult };
}

function withTimeout(work: Promise<unknown>, ms: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    work.then(
      () => resolve('ok'),
      () => resolve('failed'),
    );
    work.finally(() => clearTimeout(timer)).catch(() => undefined);
  });
}

/** The readiness context names no person: it only proves the keyring works. */
const READINESS_CONTEXT = { purpose: 'readiness-probe', format: '1' };

async function envelopeRoundTrip(envelope: Envelope): Promise<void> {
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
  const checks = { ledger, blobs, envelope };
  return { ready: Object.values(checks).every((c) => c === 'ok'), checks };
}
