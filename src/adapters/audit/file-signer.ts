import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { VaultError } from '../../core/errors';
import type { AuditSigner, Logger } from '../../core/ports';
import { createSecretFile, readSecretFile, SecretFileError } from '../secret-file';

const KEY_BYTES = 32;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** The signing key file is unusable; the message names AUDIT_SIGNING_KEY_FILE. */
export class AuditSigningKeyError extends VaultError {
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('audit_signing_key_invalid', `AUDIT_SIGNING_KEY_FILE (${file}): ${reason}`, options);
  }
}

/**
 * HMAC-SHA256 with a 32-byte key from a file (base64, mode 0600), created on first use like
 * the local master key. Keep the file away from the database's backups and operators: with
 * it, digests can be forged.
 */
export class FileAuditSigner implements AuditSigner {
  readonly keyId: string;

  private constructor(private readonly key: Buffer) {
    // A fingerprint names the key without revealing it.
    this.keyId = `hmac-file:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
  }

  static async open(file: string, logger: Logger): Promise<FileAuditSigner> {
    const wrap = (err: unknown) =>
      err instanceof SecretFileError ? new AuditSigningKeyError(file, err.reason) : err;
    let content = await readSecretFile(file, 128).catch((err: unknown) => {
      throw wrap(err);
    });
    if (!content) {
      const created = await createSecretFile(file, randomBytes(KEY_BYTES).toString('base64')).catch(
        (err: unknown) => {
          throw wrap(err);
        },
      );
      if (created) logger.warn({ keyFile: file }, 'generated a new audit digest signing key');
      content = await readSecretFile(file, 128).catch((err: unknown) => {
        throw wrap(err);
      });
      if (!content) throw new AuditSigningKeyError(file, 'vanished right after it was created');
    }
    if (!BASE64_KEY.test(content.text)) {
      throw new AuditSigningKeyError(
        file,
        `must hold ${KEY_BYTES} bytes in base64 (44 characters)`,
      );
    }
    return new FileAuditSigner(Buffer.from(content.text, 'base64'));
  }

  async sign(message: Uint8Array): Promise<string> {
    return createHmac('sha256', this.key).update(message).digest('base64');
  }

  async verify(message: Uint8Array, signature: string): Promise<boolean> {
    const expected = createHmac('sha256', this.key).update(message).digest();
    const given = Buffer.from(signature, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
