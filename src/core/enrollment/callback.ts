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

export class CallbackFormatError extends Error {}

const ENUM_LIKE = /^[A-Z0-9_]{1,64}$/;

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
    throw new CallbackFormatError('jumioIdScanReference is missing or malformed');
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
    // Jumio documents at most 255 characters; anything longer is not Jumio's.
    facemapUrl: facemapUrl && facemapUrl.length <= 2048 ? facemapUrl : null,
    userReferenceCandidate: single(fields, userReferenceField),
    scanSource: enumLike(single(fields, 'idScanSource')),
    transactionDate: timestampField(fields, 'transactionDate'),
    callbackDate: timestampField(fields, 'callbackDate'),
  };
}

// ---------------------------------------------------------------- user reference

const USER_REFERENCE = /^[A-Za-z0-9._:-]{1,100}$/;
const EMAIL_LIKE = /@/;
/** Phone numbers as people write them: +49 151..., (555) 123-4567, 555-123-4567, 555.123.4567. */
const PHONE_LIKE = [/^\+\d[\d\s().-]{5,}$/, /^\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}$/];

/**
 * A user reference must be the customer's own opaque identifier: present, at most 100
 * characters of a conservative set, and not shaped like an email address or a phone
 * number (Jumio forbids PII there, and the vault must not keep it).
 */
export function isValidUserReference(value: string | undefined): value is string {
  if (value === undefined || !USER_REFERENCE.test(value)) return false;
  if (EMAIL_LIKE.test(value)) return false;
  return !PHONE_LIKE.some((re) => re.test(value));
}

export const userReferenceSchema = z.string().refine(isValidUserReference, {
  message:
    'must be 1-100 characters of letters, digits, . _ : - and not an email address or phone number',
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
