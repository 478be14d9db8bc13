/**
 * zod schemas for the Retrieval, Delete and Authentication API responses. `z.object`
 * strips unknown keys, so every PII field Jumio sends (names, dates of birth, document
 * numbers, image URLs) is dropped here, at the edge: the allowlist of invariant 5.
 */
import { z } from 'zod';
import {
  authenticationResultSchema,
  identityVerificationSchema,
  jumioTimestampSchema,
  oneOrMany,
  scanStatusSchema,
  verificationStatusSchema,
  type JumioAuthentication,
  type JumioScanDetails,
  type JumioScanStatus,
} from '../../core/jumio';

const optionalString = z.string().nullish();

export const scanStatusResponseSchema = z
  .object({
    timestamp: jumioTimestampSchema.nullish(),
    scanReference: z.string().min(1),
    status: scanStatusSchema,
  })
  .transform((r): JumioScanStatus => ({
    scanReference: r.scanReference,
    status: r.status,
    timestamp: r.timestamp ?? null,
  }));

const facemapLinkSchema = z.object({
  classifier: optionalString,
  href: z.string().min(1),
});

export const scanDetailsResponseSchema = z
  .object({
    timestamp: jumioTimestampSchema.nullish(),
    scanReference: z.string().min(1),
    // Only the status is kept: the rest of `document` is PII.
    document: z.object({ status: verificationStatusSchema.nullish() }).nullish(),
    transaction: z.object({
      status: scanStatusSchema,
      date: jumioTimestampSchema.nullish(),
      customerId: optionalString,
      merchantScanReference: optionalString,
    }),
    verification: z
      .object({ identityVerification: identityVerificationSchema.nullish() })
      .nullish(),
    // Documented as one object; tolerate a list, as Jumio does elsewhere.
    facemap: oneOrMany(facemapLinkSchema).nullish(),
  })
  .transform((r): JumioScanDetails => {
    const links = r.facemap ?? [];
    const facemap =
      links.find((l) => l.classifier?.toLowerCase() === 'facemap') ??
      links.find((l) => l.classifier == null);
    const iv = r.verification?.identityVerification ?? null;
    return {
      scanReference: r.scanReference,
      status: r.transaction.status,
      verificationStatus: r.document?.status ?? null,
      similarity: iv?.similarity ?? null,
      validity: iv?.validity ?? null,
      reason: iv?.reason ?? null,
      facemapHref: facemap?.href ?? null,
      customerId: r.transaction.customerId ?? null,
      merchantScanReference: r.transaction.merchantScanReference ?? null,
      transactionDate: r.transaction.date ?? null,
    };
  });

export const initiateResponseSchema = z.object({
  authenticationTransactionReference: z.string().min(1),
  // Only the web journey returns it.
  redirectUrl: z.string().min(1).nullish(),
});

export const authenticationResponseSchema = z
  .object({
    transactionReference: z.string().min(1),
    enrollmentTransactionReference: z.string().min(1),
    transactionResult: authenticationResultSchema,
    transactionDate: jumioTimestampSchema,
    scanSource: z.string().min(1),
    userReference: optionalString,
  })
  .transform((r): JumioAuthentication => {
    const out: JumioAuthentication = {
      transactionReference: r.transactionReference,
      enrollmentTransactionReference: r.enrollmentTransactionReference,
      transactionResult: r.transactionResult,
      transactionDate: r.transactionDate,
      scanSource: r.scanSource.trim().toUpperCase(),
    };
    if (r.userReference) out.userReference = r.userReference;
    return out;
  });
