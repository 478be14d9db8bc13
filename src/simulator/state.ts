import {
  type AuthenticationResult as JumioAuthenticationResult,
  FINAL_AUTHENTICATION_RESULTS,
  SCAN_STATUSES,
  type ScanStatus,
  SIMILARITIES,
  type Similarity,
  VERIFICATION_STATUSES,
  type VerificationStatus,
} from '../core/jumio';
import type { PiiOverride } from './pii';
import type { FractionDigits } from './time';

// Jumio's own values: one list, the one the vault parses with (src/core/jumio.ts), so the
// simulator cannot drift from what the client accepts.
export { SCAN_STATUSES, SIMILARITIES, VERIFICATION_STATUSES };
export type { ScanStatus, Similarity, VerificationStatus };

export const ID_SCAN_SOURCES = ['WEB', 'WEB_CAM', 'WEB_UPLOAD', 'API', 'SDK'] as const;
export type IdScanSource = (typeof ID_SCAN_SOURCES)[number];

/** Simulator only: the results a user can end the hosted journey with. */
export const AUTHENTICATION_RESULTS = ['PASSED', 'FAILED', 'INVALID'] as const;
export type AuthenticationResult = (typeof AUTHENTICATION_RESULTS)[number];
/** Every state a transaction can be in: Jumio's list of authentication results. */
export type AuthenticationState = JumioAuthenticationResult;
export const FINAL_AUTHENTICATION_STATES: readonly AuthenticationState[] =
  FINAL_AUTHENTICATION_RESULTS;

export const JUMIO_ENDPOINTS = [
  'scanStatus',
  'scanDetails',
  'facemap',
  'scanDelete',
  'initiate',
  'authRetrieval',
  'authDelete',
] as const;
export type JumioEndpoint = (typeof JUMIO_ENDPOINTS)[number];

export type ValiditySpelling = 'TRUE' | 'true' | 'boolean';

/** How a scan's Retrieval API answers are spelled (Jumio has shipped each form). */
export interface ResponseVariant {
  validity?: ValiditySpelling;
  fractionDigits?: FractionDigits;
  /** Retrieval without `transaction.date` (to test what the vault does without it). */
  omitTransactionDate?: boolean;
  /** The scan reference the Retrieval API names, when a test wants it to disagree. */
  scanReference?: string;
  /** The facemap link the Retrieval API offers, when a test wants another one. */
  facemapHref?: string;
}

export interface DeliveryRecord {
  at: string;
  url: string;
  callBackType: 'NETVERIFYID' | 'NETVERIFY_AUTHENTICATION';
  transactionResult?: string;
  status: number | null;
  error?: string;
}

export interface SimScan {
  scanReference: string;
  status: ScanStatus;
  verificationStatus: VerificationStatus;
  similarity: Similarity;
  validity: boolean;
  reason?: string;
  customerId?: string;
  merchantIdScanReference?: string;
  idScanSource: IdScanSource;
  facemap: Buffer | null;
  facemapSha256: string | null;
  createdAt: Date;
  deleted: boolean;
  deletedAt: Date | null;
  facemapDownloads: number;
  pii?: PiiOverride;
  responseVariant: ResponseVariant;
  callbacks: DeliveryRecord[];
}

export interface SimAuthentication {
  transactionReference: string;
  enrollmentTransactionReference: string;
  state: AuthenticationState;
  metadataForm: 'wrapped' | 'unwrapped';
  /** 'file': a part with a filename; 'field': a text part. Both carried application/json. */
  metadataPart: 'file' | 'field';
  userReference?: string;
  callbackUrl?: string;
  successUrl?: string;
  errorUrl?: string;
  locale?: string;
  tokenLifetimeInMinutes?: number;
  authorizationToken: string;
  redirectUrl: string;
  facemapSha256: string;
  facemapFilename: string | null;
  scanSource: 'WEB' | 'SDK';
  createdAt: Date;
  finishedAt: Date | null;
  deleted: boolean;
  deletedAt: Date | null;
  callbacks: DeliveryRecord[];
}

export type CredentialKind = 'main' | 'admin' | 'invalid' | 'none';

export interface RequestLogEntry {
  seq: number;
  method: string;
  path: string;
  time: string;
  /** null while the response is pending, or if the connection closed without one (hang). */
  status: number | null;
  credentials: CredentialKind;
  userAgent: string | null;
  accept: string | null;
  endpoint: JumioEndpoint | 'unknown';
  /** Id of the fault that answered (or slowed) this call. */
  fault: string | null;
}

export const FAULT_KINDS = [
  'status',
  'hang',
  'slow',
  'malformed',
  'redirect',
  'oversized',
  'truncated',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  id: string;
  endpoint: JumioEndpoint | '*';
  kind: FaultKind;
  status: number;
  retryAfter?: number;
  delayMs: number;
  location: string;
  bytes: number;
  contentLength: boolean;
  /** Chance (0-1) that a matching call gets this fault; a call it spares may get the next. */
  probability: number;
  /** Calls left; null means for good. */
  remaining: number | null;
  hits: number;
  createdAt: string;
}

/** All mutable simulator state, in memory: a restart (or `POST /__sim/reset`) forgets everything. */
export class SimState {
  readonly scans = new Map<string, SimScan>();
  readonly authentications = new Map<string, SimAuthentication>();
  readonly requests: RequestLogEntry[] = [];
  faults: Fault[] = [];
  private requestSeq = 0;
  private faultSeq = 0;

  logRequest(entry: Omit<RequestLogEntry, 'seq'>): RequestLogEntry {
    const logged = { seq: ++this.requestSeq, ...entry };
    this.requests.push(logged);
    return logged;
  }

  clearRequests(): number {
    const n = this.requests.length;
    this.requests.length = 0;
    return n;
  }

  addFault(fault: Omit<Fault, 'id' | 'hits'>): Fault {
    const added: Fault = { ...fault, id: `fault_${++this.faultSeq}`, hits: 0 };
    this.faults.push(added);
    return added;
  }

  /**
   * The first fault (in creation order) still armed for this endpoint whose dice say so;
   * counts it down.
   */
  takeFault(endpoint: JumioEndpoint, random: () => number = Math.random): Fault | undefined {
    const fault = this.faults.find(
      (f) =>
        (f.endpoint === '*' || f.endpoint === endpoint) &&
        f.remaining !== 0 &&
        (f.probability >= 1 || random() < f.probability),
    );
    if (!fault) return undefined;
    fault.hits++;
    if (fault.remaining !== null) fault.remaining--;
    return fault;
  }

  authenticationsFor(enrollmentReference: string): SimAuthentication[] {
    return [...this.authentications.values()].filter(
      (a) => a.enrollmentTransactionReference === enrollmentReference,
    );
  }

  reset(): void {
    this.scans.clear();
    this.authentications.clear();
    this.requests.length = 0;
    this.faults = [];
  }
}
