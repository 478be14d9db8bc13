/**
 * The vault's API as the console uses it: same origin, bearer token from the session, JSON
 * in and out. The token goes in the Authorization header only (never in a URL, never
 * logged); a 401 anywhere ends the session (see App).
 */

export type Role = 'admin' | 'auditor' | 'authenticator' | 'onboarding';
export interface Me {
  name: string;
  role: Role;
}

export const ENROLLMENT_STATES = [
  'PENDING',
  'STORED',
  'ACTIVE',
  'REJECTED',
  'FAILED',
  'SUPERSEDED',
  'PARKED',
  'ERASED',
] as const;
export type EnrollmentState = (typeof ENROLLMENT_STATES)[number];

export const ERASURE_REASONS = [
  'gdpr_art17',
  'account_closed',
  'consent_withdrawn',
  'retention',
  'other',
] as const;
export type ErasureReason = (typeof ERASURE_REASONS)[number];

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Summary {
  byState: Partial<Record<EnrollmentState, number>>;
  oldestActive: { enrollmentReference: string; activatedAt: string } | null;
  retentionPastDue: number;
  retentionDueWithin30Days: number;
  legalHolds: number;
  facemapBytes: number;
  facemapsByKey: Array<{ keyId: string; facemaps: number }>;
  retentionDays: number;
}

export interface FacemapMonth {
  month: string;
  stored: number;
  destroyed: number;
  held: number;
}

export interface RetentionSchedule {
  from: string;
  to: string;
  retentionDays: number;
  months: Array<{ month: string; due: number; onHold: number }>;
}

export interface InventoryItem {
  userReference: string | null;
  enrollmentReference: string;
  state: EnrollmentState;
  reason?: string;
  createdAt: string;
  storedAt?: string;
  activatedAt?: string;
  facemapBytes: number | null;
  keyId: string | null;
  retentionDueAt: string;
  lastInteractionAt: string | null;
  legalHold: boolean;
  erasedAt?: string;
}

export interface Enrollment {
  userReference: string | null;
  enrollmentReference: string;
  state: EnrollmentState;
  reason?: string;
  createdAt: string;
  storedAt?: string;
  activatedAt?: string;
  keyId: string | null;
  history: Array<{
    enrollmentReference: string;
    state: EnrollmentState;
    reason?: string;
    createdAt: string;
  }>;
}

export interface Authentication {
  authenticationReference: string;
  enrollmentReference: string;
  state: string;
  reason?: string;
  purpose: string;
  requestedBy: string;
  createdAt: string;
  finalizedAt?: string;
}

export interface AuditEvent {
  seq: number;
  at: string;
  type: string;
  actor: string;
  enrollmentReference: string | null;
  authenticationReference: string | null;
  userReference: string | null;
  details: Record<string, unknown>;
}

export interface Verification {
  ok: boolean;
  checkedThrough: number;
  digestsChecked: number;
  brokenAt?: number;
  reason?: string;
  message?: string;
}

export interface AuditStatus {
  head: { seq: number };
  lastDigest: { number: number; toSequence: number; createdAt: string } | null;
  lastVerification: (Verification & { seq: number; at: string; actor: string }) | null;
}

export interface LegalHold {
  userReference: string;
  reference: string;
  reason: string;
  placedBy: string;
  placedAt: string;
}

export interface Receipt {
  erasureId: string;
  state: 'PENDING' | 'DONE';
  userReference: string;
  enrollmentReferences: string[];
  blobKeysDestroyed: string[] | null;
  erasedAt: string | null;
  reason: ErasureReason;
  ticket: string | null;
  requestedBy: string;
  requestedAt: string;
  auditSequence: number | null;
  lastError?: string;
}

/** A refusal or failure of the API, with the vault's own code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Array<{ field: string; message: string }> = [],
  ) {
    super(message);
  }
}

/** The token was not (or is no longer) accepted: back to sign-in. */
export class Unauthorized extends ApiError {}

export type Query = Record<string, string | number | boolean | undefined | null>;

/** `path?query` without the empty values. */
export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = `the vault answered ${res.status}`;
  let fields: Array<{ field: string; message: string }> = [];
  try {
    const body = (await res.json()) as {
      error?: { code?: string; message?: string; fields?: typeof fields };
    };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
    fields = body.error?.fields ?? [];
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  return res.status === 401
    ? new Unauthorized(401, code, message)
    : new ApiError(res.status, code, message, fields);
}

export class Api {
  constructor(
    private readonly token: string,
    private readonly onUnauthorized: (error: Unauthorized) => void,
  ) {}

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${this.token}`);
    // Same origin only, no cookies, no caching of answers that carry inventory data.
    const res = await fetch(path, {
      ...init,
      headers,
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
    if (res.ok) return res;
    const error = await errorOf(res);
    if (error instanceof Unauthorized) this.onUnauthorized(error);
    throw error;
  }

  async get<T>(path: string, query?: Query): Promise<T> {
    const res = await this.fetch(withQuery(path, query), {
      headers: { Accept: 'application/json' },
    });
    return (await res.json()) as T;
  }

  async send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body: unknown): Promise<T> {
    const res = await this.fetch(path, {
      method,
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return (await res.json()) as T;
  }

  /** A file the API streams (the export), as a Blob: the token never goes into a URL. */
  async download(path: string, query?: Query): Promise<Blob> {
    const res = await this.fetch(withQuery(path, query));
    return res.blob();
  }
}

/** Checks a token by asking who it is; the caller keeps the token only once it is accepted. */
export function whoAmI(token: string): Promise<Me> {
  return new Api(token, () => undefined).get<Me>('/v1/me');
}
