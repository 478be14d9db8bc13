import {
  GenerateMacCommand,
  KMSInvalidMacException,
  type KMSClient,
  VerifyMacCommand,
} from '@aws-sdk/client-kms';
import { DependencyError } from '../../core/errors';
import type { AuditSigner } from '../../core/ports';

/** Every KMS call is bounded: a hung KMS must not hold a digest (or a verify) forever. */
const KMS_TIMEOUT_MS = 10_000;

/**
 * HMAC-SHA256 by an AWS KMS HMAC key (GenerateMac / VerifyMac): the key never leaves KMS,
 * and every signature is in CloudTrail.
 */
export class KmsAuditSigner implements AuditSigner {
  constructor(
    private readonly client: KMSClient,
    readonly keyId: string,
    private readonly timeoutMs = KMS_TIMEOUT_MS,
  ) {}

  async sign(message: Uint8Array): Promise<string> {
    try {
      const out = await this.client.send(
        new GenerateMacCommand({
          KeyId: this.keyId,
          Message: message,
          MacAlgorithm: 'HMAC_SHA_256',
        }),
        { abortSignal: AbortSignal.timeout(this.timeoutMs) },
      );
      if (!out.Mac) throw new Error('no Mac in the answer');
      return Buffer.from(out.Mac).toString('base64');
    } catch (error) {
      throw new DependencyError('kms', 'GenerateMac failed', { cause: error });
    }
  }

  async verify(message: Uint8Array, signature: string): Promise<boolean> {
    const mac = Buffer.from(signature, 'base64');
    if (mac.length === 0) return false;
    try {
      const out = await this.client.send(
        new VerifyMacCommand({
          KeyId: this.keyId,
          Message: message,
          Mac: mac,
          MacAlgorithm: 'HMAC_SHA_256',
        }),
        { abortSignal: AbortSignal.timeout(this.timeoutMs) },
      );
      return out.MacValid === true;
    } catch (error) {
      if (error instanceof KMSInvalidMacException) return false;
      throw new DependencyError('kms', 'VerifyMac failed', { cause: error });
    }
  }
}
