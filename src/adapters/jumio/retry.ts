/** Backoff and Retry-After arithmetic for the Jumio client, kept pure so it can be tested. */

export interface RetryPolicy {
  /** Total attempts, the first included. 1 disables retries. */
  maxAttempts: number;
  baseDelayMs: number;
  /** Caps the backoff, and the Retry-After the client is willing to wait in-process. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 5_000 };

/**
 * Exponential backoff with full jitter (AWS Architecture Blog): a uniform delay in
 * [0, min(max, base * 2^(n-1))), so that many clients do not retry in lockstep.
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3), in milliseconds from
 * `nowMs`. Null when absent or unparseable; a date in the past is 0.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs: number = Date.now(),
): number | null {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!raw) return null;
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  // An HTTP date names its day or month; Date.parse would also take "-5" or "1.5".
  if (!/[a-z]/i.test(raw)) return null;
  const at = Date.parse(raw);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}
