/**
 * A KMS key ARN. The Encryption SDK records the ARN KMS returns in each ciphertext and, on
 * decrypt, asks KMS only for keys configured by ARN: an alias or a bare key id would
 * encrypt but never decrypt, so only ARNs are accepted.
 */
export const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/;

/** The region named by a key ARN (undefined for anything else). */
export function kmsKeyRegion(arn: string): string | undefined {
  return KMS_KEY_ARN.exec(arn)?.[1];
}
