/**
 * The Jumio port: what the core needs from Jumio, in the vault's own normalized terms,
 * plus the zod normalizers for Jumio's many spellings of the same value (shared by the
 * Retrieval API client and the callback intake). Pure TypeScript: zod only.
 *
 * Normalized types are an allowlist: they carry references, statuses and dates, never
 * names, dates of birth, document numbers, addresses or image URLs (invariant 5).
 */
import { z } from 'zod';
import { VaultError } from './errors';

// ---------------------------------------------------------------- enums

export const VERIFICATION_STATUSES = [
  'APPROVED_VERIFIED',
  'DENIED_FRAUD',
  'DENIED_UNSUPPORTED_ID_TYPE',
  'DENIED_UNSUPPORTED_ID_COUNTRY',
  'ERROR_NOT_READABLE_ID',
  'NO_ID_UPLOADED',
] as const;
export type VerificationStatus = (typeof VERIFICATION_STATUSES)[number];

export const SIMILARITIES = ['MATCH', 'NO_MATCH', 'NOT_POSSIBLE'] as const;
export type Similarity = (typeof SIMILARITIES)[number];

export const SCAN_STATUSES = ['PENDING', 'DONE', 'FAILED'] as const;
export type ScanStatus = (typeof SCAN_STATUSES)[number];

export const AUTHENTICATION_RESULTS = [
  'CREATED',
  'STARTED',
  'PASSED',
  'FAILED',
  'INVALID',
  'EXPIRED',
] as const;
export type AuthenticationResult = (typeof AUTHENTICATION_RESULTS)[number];

/** Results after which Jumio never changes the transaction again. */
export const FINAL_AUTHENTICATION_RESULTS = ['PASSED', 'FAILED', 'INVALID', 'EXPIRED'] as const;

export const SUPPORTED_LOCALES = [
  'bg',
  'cs',
  'da',
  'de',
  'el',
  'en',
  'en-GB',
  'es',
  'es-MX',
  'et',
  'fi',
  'fr',
  'hu',
  'hy',
  'it',
  'ja',
  'ka',
  'ko',
  'lt',
  'nl',
  'no',
  'pl',
  'pt',
  'pt-BR',
  'ro',
  'ru',
  'sk',
  'sv',
  'tr',
  'vi',
  'zh-CN',
  'zh-HK',
] as const;
export type JumioLocale = (typeof SUPPORTED_LOCALES)[number];

// ---------------------------------------------------------------- value normalizers

/** Upper-cases and trims strings before an enum check: Jumio's enums are upper case. */
function upperEnum<const T extends readonly [string, ...string[]]>(values: T) {
  return z.preprocess(
    (v) => (typeof v === 'string' ? v.trim().toUpperCase() : v),
    z.enum(values as unknown as { [K in T[number]]: K }),
  );
}

export const verificationStatusSchema = upperEnum(VERIFICATION_STATUSES);
export const similaritySchema = upperEnum(SIMILARITIES);
export const scanStatusSchema = upperEnum(SCAN_STATUSES);
export const authenticationResultSchema = upperEnum(AUTHENTICATION_RESULTS);

/**
 * `validity` has been seen as `"TRUE"`/`"FALSE"`, `"true"`/`"false"` and JSON booleans.
 * Any other value is an error, never a silent false or true (eligibility hinges on it).
 */
export const validitySchema = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const s = v.trim().toLowerCase();
  if (s === 'true') return true;
  if (s === 'false') return false;
  ctx.addIssue({ code: 'custom', message: 'expected TRUE or FALSE in any case, or a boolean' });
  return z.NEVER;
});

/** Parses a Jumio validity value; throws a ZodError (without the value) when unknown. */
export function parseValidity(value: unknown): boolean {
  return validitySchema.parse(value);
}

const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z?)$/;

/**
 * `YYYY-MM-DDThh:mm:ss[.S|.SS|.SSS][Z]` as UTC. The authentication retrieval sample has
 * no `Z`; it is UTC all the same, so a missing `Z` must not mean local time.
 */
export function parseJumioTimestamp(value: string): Date | null {
  const m = TIMESTAMP_RE.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = frac === undefined ? 0 : Number(frac.padEnd(3, '0'));
  const date = new Date(
    Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms),
  );
  // Date.UTC rolls 2024-02-30 over to March: refuse instead of shifting the date.
  if (
    Number.isNaN(date.getTime()) ||
    date.getUTCFullYear() !== Number(y) ||
    date.getUTCMonth() !== Number(mo) - 1 ||
    date.getUTCDate() !== Number(d) ||
    date.getUTCHours() !== Number(h) ||
    date.getUTCMinutes() !== Number(mi) ||
    date.getUTCSeconds() !== Number(s)
  ) {
    return null;
  }
  return date;
}

export const jumioTimestampSchema = z.string().transform((v, ctx) => {
  const date = parseJumioTimestamp(v);
  if (date === null) {
    ctx.addIssue({ code: 'custom', message: 'expected YYYY-MM-DDThh:mm:ss[.SSS][Z]' });
    return z.NEVER;
  }
  return date;
});

/** Fields documented as lists sometimes hold a single object: always hand back a list. */
export function oneOrMany<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (Array.isArray(v) ? v : [v]), z.array(item));
}

/**
 * A JSON document that may arrive already parsed or as a JSON string (the callback's
 * `identityVerification` form field is a string; the Retrieval API sends an object).
 */
export function jsonEncoded<T extends z.ZodType>(inner: T) {
  return z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON document' });
      return z.NEVER;
    }
  }, inner);
}

/** `{similarity, validity, reason?}`; `reason` can be present even when valid. */
export const identityVerificationSchema = jsonEncoded(
  z.object({
    similarity: similaritySchema,
    validity: validitySchema,
    reason: z.string().nullish(),
  }),
);

// ---------------------------------------------------------------- normalized domain types

export interface JumioScanStatus {
  scanReference: string;
  status: ScanStatus;
  /** When Jumio produced the answer; null when absent. */
  timestamp: Date | null;
}

/** The Retrieval API's scan data, reduced to the allowlisted, non-PII fields. */
export interface JumioScanDetails {
  scanReference: string;
  /** Transaction status: PENDING while Jumio still works on it. */
  status: ScanStatus;
  /** `document.status`; null while pending. */
  verificationStatus: VerificationStatus | null;
  similarity: Similarity | null;
  validity: boolean | null;
  reason: string | null;
  /** The facemap download URL, as Jumio gave it (checked again before any fetch). */
  facemapHref: string | null;
  customerId: string | null;
  merchantScanReference: string | null;
  transactionDate: Date | null;
}

export interface InitiateAuthenticationInput {
  facemap: Uint8Array;
  /** The onboarding scan reference (`jumioIdScanReference`). */
  enrollmentTransactionReference: string;
  /** Non-PII reference for the person (never an email address). */
  userReference?: string;
  callbackUrl?: string;
  successUrl?: string;
  errorUrl?: string;
  locale?: JumioLocale;
  tokenLifetimeInMinutes?: number;
}

export interface InitiatedAuthentication {
  authenticationReference: string;
  /** Only for the web journey. */
  redirectUrl?: string;
}

/** Jumio's view of an authentication transaction, without its images. */
export interface JumioAuthentication {
  transactionReference: string;
  enrollmentTransactionReference: string;
  transactionResult: AuthenticationResult;
  transactionDate: Date;
  scanSource: string;
  userReference?: string;
}

// ---------------------------------------------------------------- the port

/**
 * One operation per Jumio endpoint the vault uses. Implementations throw only the
 * JumioError subclasses below. GETs and DELETEs may be retried internally on transient
 * failures; `initiateAuthentication` never is (a second initiate EXPIREs the first).
 */
export interface JumioApi {
  /** Throws JumioNotFoundError when unknown or deleted. */
  getScanStatus(scanReference: string): Promise<JumioScanStatus>;
  /** Throws JumioNotFoundError when unknown or deleted. */
  getScanDetails(scanReference: string): Promise<JumioScanDetails>;
  /**
   * Fetches the facemap bytes of `scanReference` only from the configured Jumio origin and
   * only at `facemapPath(scanReference)`, never following redirects, within the size cap
   * (UnsafeFacemapUrlError, FacemapTooLargeError).
   */
  downloadFacemap(url: string, scanReference: string): Promise<Uint8Array>;
  /** Idempotent: a 404 (already deleted) is success. */
  deleteScan(scanReference: string): Promise<void>;
  /** Throws JumioInvalidRequestError before sending anything when the input breaks a limit. */
  initiateAuthentication(input: InitiateAuthenticationInput): Promise<InitiatedAuthentication>;
  getAuthentication(transactionReference: string): Promise<JumioAuthentication>;
  /** Idempotent: a 404 (already deleted) is success. */
  deleteAuthentication(transactionReference: string): Promise<void>;
}

// ---------------------------------------------------------------- errors

/**
 * Every Jumio failure. `transient` says the same call may succeed later (network,
 * timeout, 5xx, 429); for an initiate it also means the outcome at Jumio is unknown.
 * Messages never carry bytes, credentials, PII or full URLs.
 */
export abstract class JumioError extends VaultError {
  abstract readonly transient: boolean;
}

/** 404: the transaction does not exist or has been deleted (Jumio does not say which). */
export class JumioNotFoundError extends JumioError {
  readonly transient = false;
  constructor(readonly operation: string) {
    super('jumio_not_found', `${operation}: not found at Jumio (unknown or deleted)`);
  }
}

export class JumioUnauthorizedError extends JumioError {
  readonly transient = false;
  constructor(
    readonly operation: string,
    readonly status: number,
  ) {
    super('jumio_unauthorized', `${operation}: Jumio refused the credentials (HTTP ${status})`);
  }
}

export class JumioRateLimitedError extends JumioError {
  readonly transient = true;
  constructor(
    readonly operation: string,
    /** What Jumio asked for in Retry-After; null when it did not say. */
    readonly retryAfterMs: number | null,
  ) {
    super(
      'jumio_rate_limited',
      `${operation}: rate limited by Jumio` +
        (retryAfterMs === null ? '' : ` (retry after ${retryAfterMs} ms)`),
    );
  }
}

export class JumioUpstreamError extends JumioError {
  readonly transient = true;
  constructor(
    readonly operation: string,
    readonly status: number,
    /** A 503 may carry Retry-After too; null when absent. */
    readonly retryAfterMs: number | null = null,
  ) {
    super('jumio_upstream_error', `${operation}: Jumio answered HTTP ${status}`);
  }
}

export class JumioTimeoutError extends JumioError {
  readonly transient = true;
  constructor(
    readonly operation: string,
    readonly phase: 'connect' | 'headers' | 'body' | 'total',
    options?: { cause?: unknown },
  ) {
    super(
      'jumio_timeout',
      phase === 'total'
        ? `${operation}: exceeded the request deadline`
        : `${operation}: timed out waiting for ${phase}`,
      options,
    );
  }
}

/** Connection refused or reset, DNS, TLS: nothing usable came back. */
export class JumioNetworkError extends JumioError {
  readonly transient = true;
  constructor(
    readonly operation: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('jumio_network_error', `${operation}: network error (${detail})`, options);
  }
}

/** Unparseable body, a schema mismatch, or an unexpected status such as a redirect. */
export class JumioInvalidResponseError extends JumioError {
  readonly transient = false;
  constructor(
    readonly operation: string,
    detail: string,
  ) {
    super('jumio_invalid_response', `${operation}: invalid response from Jumio (${detail})`);
  }
}

/** Any other 4xx: Jumio refused the request itself; repeating it will not help. */
export class JumioRequestRejectedError extends JumioError {
  readonly transient = false;
  constructor(
    readonly operation: string,
    readonly status: number,
    /** Jumio's error code from the body (e.g. `INVALID_REQUEST`), when it gave a code-shaped one. */
    readonly jumioCode: string | null = null,
  ) {
    super(
      'jumio_request_rejected',
      `${operation}: Jumio rejected the request (HTTP ${status}${jumioCode ? ` ${jumioCode}` : ''})`,
    );
  }
}

/** The vault's own input breaks a Jumio limit; nothing was sent. Lists fields, not values. */
export class JumioInvalidRequestError extends JumioError {
  readonly transient = false;
  constructor(
    readonly operation: string,
    readonly problems: string[],
  ) {
    super('jumio_invalid_request', `${operation}: invalid request (${problems.join('; ')})`);
  }
}

export class FacemapTooLargeError extends JumioError {
  readonly transient = false;
  constructor(readonly maxBytes: number) {
    super('facemap_too_large', `facemap exceeds the limit of ${maxBytes} bytes`);
  }
}

/** Invariant 7: a facemap URL the vault refuses to fetch (or a redirect it refuses to follow). */
export class UnsafeFacemapUrlError extends JumioError {
  readonly transient = false;
  constructor(readonly reason: string) {
    super('unsafe_facemap_url', `refused facemap URL: ${reason}`);
  }
}

/** The client's own settings are unusable (bad base URL, credentials or User-Agent). */
export class JumioConfigurationError extends JumioError {
  readonly transient = false;
  constructor(problem: string) {
    super('jumio_config_invalid', `Jumio client configuration: ${problem}`);
  }
}

/**
 * Describes zod issues by path and message. Zod 4 messages name the expectation, never
 * the received value, so PII in a rejected field does not leak into logs.
 */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map(
    (i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`,
  );
}

/** The one path a scan's facemap may be downloaded from (jumio-api.md section 2). */
export function facemapPath(scanReference: string): string {
  return `/api/netverify/v2/scans/${encodeURIComponent(scanReference)}/data/facemap`;
}

/**
 * True when `url` is exactly the facemap URL of `scanReference` on some origin: the path and
 * nothing else (no query, fragment or credentials). The origin is the client's to check.
 */
export function isFacemapUrlOf(url: string, scanReference: string): boolean {
  // The URL parser drops tabs and line breaks and encodes other controls: judge the text
  // as given, which must be printable ASCII (RFC 3986) to be used or stored at all.
  if (!ASCII_URL_RE.test(url)) return false;
  try {
    const u = new URL(url);
    return (
      u.pathname === facemapPath(scanReference) &&
      u.search === '' &&
      u.hash === '' &&
      !url.includes('#') &&
      !u.username &&
      !u.password
    );
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- initiate input rules

// RFC 3986 allows ASCII only (internationalized hosts must be punycode).
const ASCII_URL_RE = /^[\x21-\x7e]+$/;

/** 127.0.0.0/8, localhost and [::1]. */
export function isLoopbackHostname(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127(\.\d{1,3}){3}$/.test(h);
}

function httpsUrl(max: number, allowLoopbackHttp: boolean) {
  return z
    .string()
    .max(max)
    .refine((v) => ASCII_URL_RE.test(v), { message: 'must be ASCII (RFC 3986)' })
    .refine(
      (v) => {
        try {
          const u = new URL(v);
          const schemeOk =
            u.protocol === 'https:' ||
            (allowLoopbackHttp && u.protocol === 'http:' && isLoopbackHostname(u.hostname));
          return schemeOk && u.hostname !== '' && !u.username && !u.password;
        } catch {
          return false;
        }
      },
      { message: 'must be an https URL without credentials' },
    );
}

/**
 * Field limits of the initiate endpoint (jumio-api.md section 4). Jumio requires https
 * URLs; `allowLoopbackHttpUrls` exists only for a client talking to the loopback simulator,
 * whose callbacks go to a vault on the same machine.
 */
export function makeInitiateAuthenticationInputSchema(options: { allowLoopbackHttpUrls: boolean }) {
  const loopback = options.allowLoopbackHttpUrls;
  return z.object({
    facemap: z.instanceof(Uint8Array).refine((b) => b.byteLength > 0, { message: 'empty' }),
    enrollmentTransactionReference: z.string().min(1).max(36),
    userReference: z
      .string()
      .min(1)
      .max(100)
      // Jumio forbids PII here; an email address is the usual slip.
      .refine((v) => !v.includes('@'), { message: 'must not contain an email address' })
      .optional(),
    callbackUrl: httpsUrl(255, loopback).optional(),
    successUrl: httpsUrl(2047, loopback).optional(),
    errorUrl: httpsUrl(255, loopback).optional(),
    locale: z.enum(SUPPORTED_LOCALES).optional(),
    tokenLifetimeInMinutes: z.number().int().min(5).max(86400).optional(),
  });
}

/** The production rules: https URLs only. */
export const initiateAuthenticationInputSchema = makeInitiateAuthenticationInputSchema({
  allowLoopbackHttpUrls: false,
});
