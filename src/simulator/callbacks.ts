import type { ScanPii } from './pii';
import type { DeliveryRecord, SimAuthentication, SimScan, ValiditySpelling } from './state';
import { type FractionDigits, formatJumioTimestamp } from './time';

/** The shapes Jumio has been seen to send; each one is selectable per callback. */
export interface ScanCallbackVariant {
  validity?: ValiditySpelling;
  fractionDigits?: FractionDigits;
  livenessImages?: 'json' | 'repeated';
  reasonWithValidTrue?: boolean;
}

export interface AuthenticationCallbackVariant {
  fractionDigits?: FractionDigits;
  livenessImages?: 'json' | 'repeated';
}

/** `null` removes a field; any string replaces (or adds) it. */
export type FieldOverrides = Record<string, string | null>;

type Pairs = Array<[string, string]>;

export function spellValidity(valid: boolean, spelling: ValiditySpelling = 'TRUE'): unknown {
  if (spelling === 'boolean') return valid;
  const word = valid ? 'true' : 'false';
  return spelling === 'TRUE' ? word.toUpperCase() : word;
}

export function identityVerification(
  scan: SimScan,
  spelling: ValiditySpelling | undefined,
  reasonWithValidTrue = false,
): Record<string, unknown> {
  const iv: Record<string, unknown> = {
    similarity: scan.similarity,
    validity: spellValidity(scan.validity, spelling),
  };
  // Jumio sends a reason when validity is false, and has been seen to send one when it
  // is true; an explicit scan reason is always sent.
  if (scan.reason !== undefined) iv.reason = scan.reason;
  else if (!scan.validity) iv.reason = 'SELFIE_MANIPULATED';
  else if (reasonWithValidTrue) iv.reason = 'BAD_QUALITY';
  return iv;
}

const REJECT_REASONS: Partial<Record<SimScan['verificationStatus'], [string, string]>> = {
  DENIED_FRAUD: ['100', 'MANIPULATED_DOCUMENT'],
  ERROR_NOT_READABLE_ID: ['200', 'NOT_READABLE_DOCUMENT'],
};

export function rejectReason(scan: SimScan): Record<string, string> | undefined {
  const r = REJECT_REASONS[scan.verificationStatus];
  return r ? { rejectReasonCode: r[0], rejectReasonDescription: r[1] } : undefined;
}

function pushList(pairs: Pairs, key: string, values: string[], mode: 'json' | 'repeated'): void {
  if (mode === 'repeated') for (const v of values) pairs.push([key, v]);
  else pairs.push([key, JSON.stringify(values)]);
}

function applyOverrides(pairs: Pairs, overrides: FieldOverrides | undefined): URLSearchParams {
  let out = pairs;
  for (const [key, value] of Object.entries(overrides ?? {})) {
    const at = out.findIndex(([k]) => k === key);
    out = out.filter(([k]) => k !== key);
    if (value === null) continue;
    out.splice(at === -1 ? out.length : at, 0, [key, value]);
  }
  return new URLSearchParams(out);
}

export function scanCallbackForm(input: {
  scan: SimScan;
  pii: ScanPii;
  baseUrl: string;
  now: Date;
  variant?: ScanCallbackVariant;
  overrides?: FieldOverrides;
}): URLSearchParams {
  const { scan, pii, baseUrl, now, variant = {} } = input;
  const digits = variant.fractionDigits ?? 3;
  const approved = scan.verificationStatus === 'APPROVED_VERIFIED';
  const pairs: Pairs = [
    ['callBackType', 'NETVERIFYID'],
    ['jumioIdScanReference', scan.scanReference],
    ['verificationStatus', scan.verificationStatus],
    ['idScanStatus', approved ? 'SUCCESS' : 'ERROR'],
    ['idScanSource', scan.idScanSource],
    ['transactionDate', formatJumioTimestamp(scan.createdAt, digits)],
    ['callbackDate', formatJumioTimestamp(now, digits)],
  ];
  if (approved) {
    const iv = identityVerification(scan, variant.validity, variant.reasonWithValidTrue);
    pairs.push(['identityVerification', JSON.stringify(iv)]);
  }
  const reject = rejectReason(scan);
  if (reject) pairs.push(['rejectReason', JSON.stringify(reject)]);
  if (scan.facemap) {
    pairs.push(['facemap', `${baseUrl}/api/netverify/v2/scans/${scan.scanReference}/data/facemap`]);
  }
  if (scan.customerId !== undefined) pairs.push(['customerId', scan.customerId]);
  if (scan.merchantIdScanReference !== undefined) {
    pairs.push(['merchantIdScanReference', scan.merchantIdScanReference]);
  }
  pairs.push(
    ['idType', pii.idType],
    ['idSubtype', pii.idSubtype],
    ['idCountry', pii.idCountry],
    ['idUsState', pii.idUsState],
    ['idFirstName', pii.idFirstName],
    ['idLastName', pii.idLastName],
    ['idDob', pii.idDob],
    ['idExpiry', pii.idExpiry],
    ['idNumber', pii.idNumber],
    ['personalNumber', pii.personalNumber],
    ['idAddress', JSON.stringify(pii.idAddress)],
    ['clientIp', pii.clientIp],
    ['idScanImage', pii.idScanImage],
    ['idScanImageFace', pii.idScanImageFace],
    ['idScanImageBackside', pii.idScanImageBackside],
  );
  pushList(pairs, 'livenessImages', pii.livenessImages, variant.livenessImages ?? 'json');
  return applyOverrides(pairs, input.overrides);
}

export function authenticationImages(auth: SimAuthentication, baseUrl: string) {
  const images = `${baseUrl}/api/netverify/v2/authentications/${auth.transactionReference}/images`;
  return {
    face: `${images}/face`,
    liveness: [1, 2, 3, 4].map((i) => `${images}/liveness/${i}`),
  };
}

/** Images exist only once the person actually went through the journey. */
export function hasCapturedImages(auth: SimAuthentication): boolean {
  return auth.state === 'PASSED' || auth.state === 'FAILED' || auth.state === 'INVALID';
}

export function authenticationCallbackForm(input: {
  auth: SimAuthentication;
  baseUrl: string;
  now: Date;
  variant?: AuthenticationCallbackVariant;
  overrides?: FieldOverrides;
}): URLSearchParams {
  const { auth, baseUrl, now, variant = {} } = input;
  const digits = variant.fractionDigits ?? 3;
  const pairs: Pairs = [
    ['callBackType', 'NETVERIFY_AUTHENTICATION'],
    ['transactionReference', auth.transactionReference],
    ['enrollmentTransactionReference', auth.enrollmentTransactionReference],
    ['transactionResult', auth.state],
    ['transactionDate', formatJumioTimestamp(auth.createdAt, digits)],
    ['callbackDate', formatJumioTimestamp(now, digits)],
    ['scanSource', auth.scanSource],
  ];
  if (auth.userReference !== undefined) pairs.push(['userReference', auth.userReference]);
  if (hasCapturedImages(auth)) {
    const images = authenticationImages(auth, baseUrl);
    pairs.push(['idScanImageFace', images.face]);
    pushList(pairs, 'livenessImages', images.liveness, variant.livenessImages ?? 'json');
  }
  return applyOverrides(pairs, input.overrides);
}

export interface DeliveryResult {
  status: number | null;
  body: string | null;
  error?: string;
}

export interface SimLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/**
 * Posts callbacks like Jumio does (form-encoded, no redirects followed) and keeps track
 * of in-flight deliveries so that closing the simulator cancels them instead of hanging.
 */
export class CallbackSender {
  private readonly controllers = new Set<AbortController>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly fetchImpl: typeof fetch,
    private readonly logger: SimLogger,
    private readonly timeoutMs = 10_000,
  ) {}

  async send(url: string, form: URLSearchParams): Promise<DeliveryResult> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const timer = setTimeout(
      () => controller.abort(new Error('callback timed out')),
      this.timeoutMs,
    );
    try {
      const res = await this.fetchImpl(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'user-agent': 'Jumio Simulator Callback/1.0',
        },
        body: form.toString(),
        redirect: 'manual',
        signal: controller.signal,
      });
      const body = await res.text();
      this.logger.info(
        { url, status: res.status, callBackType: form.get('callBackType') },
        'callback delivered',
      );
      return { status: res.status, body };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.logger.warn({ url, error, callBackType: form.get('callBackType') }, 'callback failed');
      return { status: null, body: null, error };
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
  }

  /** Sends without making the caller wait (Jumio delivers asynchronously), recording the outcome. */
  sendInBackground(url: string, form: URLSearchParams, record: (r: DeliveryResult) => void): void {
    const p = this.send(url, form).then(record);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async close(): Promise<void> {
    for (const c of this.controllers) c.abort(new Error('simulator closing'));
    await Promise.allSettled([...this.pending]);
  }
}

export function deliveryRecord(
  url: string,
  form: URLSearchParams,
  at: Date,
  result: DeliveryResult,
): DeliveryRecord {
  const record: DeliveryRecord = {
    at: at.toISOString(),
    url,
    callBackType:
      form.get('callBackType') === 'NETVERIFYID' ? 'NETVERIFYID' : 'NETVERIFY_AUTHENTICATION',
    status: result.status,
  };
  const transactionResult = form.get('transactionResult');
  if (transactionResult !== null) record.transactionResult = transactionResult;
  if (result.error !== undefined) record.error = result.error;
  return record;
}
