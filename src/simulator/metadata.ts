import { z } from 'zod';
// The locales Jumio's authentication web journey supports: the list the client checks.
import { SUPPORTED_LOCALES } from '../core/jumio';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

// Heuristics for "userReference must not contain PII": an email address, or a phone
// number written with a leading + or with the usual separators. Bare digit strings are
// allowed because customer numbers commonly look like that.
const EMAIL = /[^\s@]+@[^\s@]+\.[^\s@]+/;
const PHONE = /\+\d[\d\s().\-/]{6,}\d|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b/;

// RFC 3986 allows only these ASCII characters (non-ASCII hosts must be punycode).
const RFC3986_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname);
}

/** Returns why `value` is not an acceptable Jumio URL, or null when it is. */
export function urlProblem(value: string, allowLoopbackHttp: boolean): string | null {
  if (!RFC3986_CHARS.test(value)) return 'must be an ASCII RFC 3986 URL (use punycode for hosts)';
  if (BAD_PERCENT.test(value)) return 'has an invalid percent-encoding';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not an absolute URL';
  }
  if (url.protocol === 'https:') return url.hostname ? null : 'has no host';
  if (url.protocol === 'http:' && allowLoopbackHttp && isLoopbackUrl(url)) return null;
  return 'must use https';
}

function jumioUrl(max: number, allowLoopbackHttp: boolean) {
  return z
    .string('must be a string')
    .max(max, `must be at most ${max} characters`)
    .superRefine((value, ctx) => {
      const problem = urlProblem(value, allowLoopbackHttp);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

export function enrollmentMetadataSchema(options: { allowHttpCallbacks: boolean }) {
  return z.strictObject({
    enrollmentTransactionReference: z
      .string('is required (a string)')
      .min(1, 'is required')
      .max(36, 'must be at most 36 characters'),
    userReference: z
      .string('must be a string')
      .min(1, 'must not be empty')
      .max(100, 'must be at most 100 characters')
      .refine((v) => !EMAIL.test(v), 'must not contain PII (an email address)')
      .refine((v) => !PHONE.test(v), 'must not contain PII (a phone number)')
      .optional(),
    callbackUrl: jumioUrl(255, options.allowHttpCallbacks).optional(),
    successUrl: jumioUrl(2047, false).optional(),
    errorUrl: jumioUrl(255, false).optional(),
    locale: z.enum(SUPPORTED_LOCALES, 'must be one of the supported locales').optional(),
    tokenLifetimeInMinutes: z
      .number('must be a number')
      .int('must be an integer')
      .min(5, 'must be at least 5')
      .max(86400, 'must be at most 86400')
      .optional(),
  });
}
export type EnrollmentMetadata = z.infer<ReturnType<typeof enrollmentMetadataSchema>>;

export interface FieldError {
  field: string;
  message: string;
}

export type MetadataParse =
  | { ok: true; form: 'wrapped' | 'unwrapped'; metadata: EnrollmentMetadata }
  | { ok: false; errors: FieldError[] };

/** Parses the enrollmentMetadata part: the documented wrapped form, or the bare object. */
export function parseEnrollmentMetadata(
  text: string,
  options: { allowHttpCallbacks: boolean },
): MetadataParse {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, errors: [{ field: 'enrollmentMetadata', message: 'is not valid JSON' }] };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, errors: [{ field: 'enrollmentMetadata', message: 'must be an object' }] };
  }
  const record = json as Record<string, unknown>;
  let form: 'wrapped' | 'unwrapped' = 'unwrapped';
  let body: unknown = record;
  if ('enrollmentMetadata' in record) {
    const extra = Object.keys(record).filter((k) => k !== 'enrollmentMetadata');
    if (extra.length > 0) {
      return {
        ok: false,
        errors: extra.map((field) => ({ field, message: 'unexpected next to enrollmentMetadata' })),
      };
    }
    form = 'wrapped';
    body = record.enrollmentMetadata;
  }
  const parsed = enrollmentMetadataSchema(options).safeParse(body);
  if (parsed.success) return { ok: true, form, metadata: parsed.data };
  const errors: FieldError[] = [];
  for (const issue of parsed.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) errors.push({ field: key, message: 'is not a known field' });
    } else {
      const field = issue.path.map(String).join('.') || 'enrollmentMetadata';
      errors.push({ field, message: issue.message });
    }
  }
  return { ok: false, errors };
}
