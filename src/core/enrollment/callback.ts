import { z } from 'zod';
import { identityVerificationSchema, parseJumioTimestamp, type Similarity } from '../jumio';

/**
 * Jumio's callbacks arrive form-encoded: a field is a string, or a list when the key is
 * repeated. Only the fields named here are ever read; everything else (names, dates of
 * birth, document numbers, image URLs...) is PII and is dropped unread.
 */
export type FormFields = Record<string, string | string[] | undefined>;

/** One value of a form field; a repeated key counts only when every copy agrees. */
export function single(fields: FormFields, name: string): string | undefined {
  const value = fields[name];
  if (Array.isArray(value)) {
    const distinct = new Set(value);
    return distinct.size === 1 ? value[0] : undefined;
  }
  return value === undefined || value === '' ? undefined : value;
}

/** Jumio references are UUIDs (36 characters); accept their shape, nothing else. */
export const JUMIO_REFERENCE = /^[A-Za-z0-9-]{1,36}$/;

export const USER_REFERENCE_FIELDS = ['customerId', 'merchantIdScanReference'] as const;
export type UserReferenceField = (typeof USER_REFERENCE_FIELDS)[number];

export interface IdentityVerificationResult {
  similarity: Similarity;
  validity: boolean;
  reason: string | null;
}

/** The allowlisted content of a NETVERIFYID callback. */
export interface IdVerificationCallback {
  enrollmentReference: string;
  verificationStatus: string | null;
  /** null when absent; 'invalid' when present but unreadable (fails closed). */
  identityVerification: IdentityVerificationResult | null | 'invalid';
  facemapUrl: string | null;
  /** The raw candidate; validated by `assessUserReference` before it is kept. */
  userReferenceCandidate: string | undefined;
  scanSource: string | null;
  transactionDate: Date | null;
  callbackDate: Date | null;
}

/** A callback that cannot be read; `reason` is a stable code for the unreadable-callback record. */
export class CallbackFormatError extends Error {
  constructor(
    message: string,
    readonly reason = 'malformed_fields',
  ) {
    super(message);
  }
}

const ENUM_LIKE = /^[A-Z0-9_]{1,64}$/;
/**
 * What a URL can be (RFC 3986: printable ASCII, no spaces). Jumio documents at most 255
 * characters; anything longer, or with control characters (a NUL cannot even be stored in
 * PostgreSQL text), is not Jumio's and is dropped.
 */
const URL_TEXT = /^[\x21-\x7e]{1,2048}$/;

function enumLike(value: string | undefined): string | null {
  const upper = value?.trim().toUpperCase();
  return upper && ENUM_LIKE.test(upper) ? upper : null;
}

/** A Jumio timestamp field (0-3 fraction digits, with or without Z); null when absent or bad. */
export function timestampField(fields: FormFields, name: string): Date | null {
  const value = single(fields, name);
  return value === undefined ? null : parseJumioTimestamp(value);
}

/** Reads a NETVERIFYID callback. Throws CallbackFormatError without the scan reference. */
export function parseIdVerificationCallback(
  fields: FormFields,
  userReferenceField: UserReferenceField,
): IdVerificationCallback {
  const enrollmentReference = single(fields, 'jumioIdScanReference');
  if (!enrollmentReference || !JUMIO_REFERENCE.test(enrollmentReference)) {
    throw new CallbackFormatError(
      'jumioIdScanReference is missing or malformed',
      'malformed_scan_reference',
    );
  }
  const status = single(fields, 'verificationStatus');
  const verification = single(fields, 'identityVerification');
  let identityVerification: IdVerificationCallback['identityVerification'] = null;
  if (verification !== undefined) {
    const parsed = identityVerificationSchema.safeParse(verification);
    identityVerification = parsed.success
      ? {
          similarity: parsed.data.similarity,
          validity: parsed.data.validity,
          // Jumio's reasons are codes; free text could carry anything, so it is dropped.
          reason: enumLike(parsed.data.reason ?? undefined),
        }
      : 'invalid';
  }
  const facemapUrl = single(fields, 'facemap');
  return {
    enrollmentReference,
    verificationStatus: enumLike(status),
    identityVerification,
    facemapUrl: facemapUrl && URL_TEXT.test(facemapUrl) ? facemapUrl : null,
    userReferenceCandidate: single(fields, userReferenceField),
    scanSource: enumLike(single(fields, 'idScanSource')),
    transactionDate: timestampField(fields, 'transactionDate'),
    callbackDate: timestampField(fields, 'callbackDate'),
  };
}

// ---------------------------------------------------------------- user reference

const USER_REFERENCE = /^[A-Za-z0-9._:-]{1,100}$/;
/** What USER_REFERENCE lets through between digit groups. */
const SEPARATORS = /[-._:]/g;
/** SSN-shaped: 123-45-6789, 123.45.6789 (nine bare digits are too common an id to refuse). */
const SSN_LIKE = /^\d{3}[-.]\d{2}[-.]\d{4}$/;
/** A date alone (a date of birth?): 1990-05-17, 17.05.1990, 05-17-1990. */
const DATE_LIKE = [/^\d{4}[-./]\d{1,2}[-./]\d{1,2}$/, /^\d{1,2}[-./]\d{1,2}[-./]\d{4}$/];
/** Country code, check digits, 11 to 30 letters and digits: the IBAN shape (checksum below). */
const IBAN_LIKE = /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/;

/** ISO 13616 check: the IBAN, rotated and with letters as numbers, is 1 modulo 97. */
function isIban(compact: string): boolean {
  if (!IBAN_LIKE.test(compact)) return false;
  const rotated = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const char of rotated) {
    const value = char >= 'A' ? char.charCodeAt(0) - 55 : Number(char);
    remainder = (remainder * (value > 9 ? 100 : 10) + value) % 97;
  }
  return remainder === 1;
}

/**
 * Why a candidate user reference looks like personal data, or null. Only the whole value
 * is judged: `user-15551234567` stays an opaque reference, `15551234567` does not.
 */
export function personalDataShapeOf(value: string): string | null {
  if (value.includes('@')) return 'email address';
  const digits = value.replace(SEPARATORS, '');
  // Phone numbers (E.164 has at most 15 digits, national forms 10 or more), with or
  // without separators, and the account and card numbers of that length.
  if (/^\d{10,15}$/.test(digits)) return 'phone or account number';
  if (SSN_LIKE.test(value)) return 'national identification number';
  if (DATE_LIKE.some((re) => re.test(value))) return 'date';
  if (isIban(digits.toUpperCase())) return 'IBAN';
  return null;
}

/**
 * A user reference must be the customer's own opaque identifier: present, at most 100
 * characters of a conservative set, and not shaped like personal data (Jumio forbids PII
 * there, and the vault must not keep it): an email address, a phone number (with or
 * without `+` and separators) or other 10-15 digit number, an SSN, a date, an IBAN.
 */
export function isValidUserReference(value: string | undefined): value is string {
  if (value === undefined || !USER_REFERENCE.test(value)) return false;
  return personalDataShapeOf(value) === null;
}

/** The rule in words, for 400 answers and CLI errors. */
export const USER_REFERENCE_RULE =
  'must be 1-100 characters of letters, digits, . _ : - and not shaped like personal data ' +
  '(email address, phone number or other 10-15 digit number, SSN, date, IBAN)';

export const userReferenceSchema = z.string().refine(isValidUserReference, {
  message: USER_REFERENCE_RULE,
});

// ---------------------------------------------------------------- eligibility

export type RejectionReason =
  | 'invalid_user_reference'
  | 'unexpected_enrollment'
  | 'user_reference_mismatch'
  | 'verification_not_approved'
  | 'identity_verification_missing'
  | 'identity_verification_invalid'
  | 'similarity_not_match'
  | 'validity_false';

/** Invariant 4, on the callback's word (the Retrieval API must confirm it later). */
export function ineligibilityOf(callback: IdVerificationCallback): RejectionReason | null {
  if (callback.verificationStatus !== 'APPROVED_VERIFIED') return 'verification_not_approved';
  const iv = callback.identityVerification;
  if (iv === null) return 'identity_verification_missing';
  if (iv === 'invalid') return 'identity_verification_invalid';
  if (iv.similarity !== 'MATCH') return 'similarity_not_match';
  if (!iv.validity) return 'validity_false';
  return null;
}
